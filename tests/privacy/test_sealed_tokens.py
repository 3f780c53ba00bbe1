"""Sealed tokens, probed as their holder would: read, alter, truncate, swap, replay after a rotation."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.keyring import KeyPurpose, generate_keyring
from privacy.sealed_tokens import InvalidToken, TokenSealer

ROOT = KeyPurpose.PARTNER_PSEUDONYM_ROOT
KEYS = generate_keyring()
SEALER = TokenSealer(KEYS)
KIND = "test-position.v1"
holders = st.integers(min_value=1, max_value=2**63 - 1)
payloads = st.binary(max_size=96)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@settings(max_examples=200)
@given(payloads, holders)
def test_round_trip_as_short_url_safe_ascii(payload: bytes, holder: int) -> None:
    token = SEALER.seal(payload, kind=KIND, holder=holder)
    assert SEALER.unseal(token, kind=KIND, holder=holder) == payload
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(token) <= 44 + -(-len(payload) * 4 // 3)


@settings(max_examples=200)
@given(payloads, holders, holders)
def test_a_token_opens_for_its_own_holder_only(payload: bytes, holder: int, other: int) -> None:
    if holder == other:
        return
    token = SEALER.seal(payload, kind=KIND, holder=holder)
    with pytest.raises(InvalidToken):
        SEALER.unseal(token, kind=KIND, holder=other)


def test_a_token_opens_for_its_own_kind_only() -> None:
    token = SEALER.seal(b"position", kind="members", holder=5)
    with pytest.raises(InvalidToken):
        SEALER.unseal(token, kind="changes", holder=5)


@settings(max_examples=100)
@given(payloads, st.data())
def test_any_flipped_bit_is_refused(payload: bytes, data: st.DataObject) -> None:
    raw = bytearray(_raw(SEALER.seal(payload, kind=KIND, holder=9)))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(InvalidToken):
        SEALER.unseal(_text(bytes(raw)), kind=KIND, holder=9)


def test_truncated_extended_spliced_and_handmade_tokens_are_refused() -> None:
    token = SEALER.seal(b"grant 7, seq 777", kind=KIND, holder=3)
    other = SEALER.seal(b"grant 7, seq 778", kind=KIND, holder=3)
    raw = _raw(token)
    forgeries = [
        "",
        "A",
        token[:-1],
        token[:-4],
        token + "A",
        token + "AAAA",
        token + "==",
        " " + token,
        token.replace("-", "+").replace("_", "/"),
        _text(raw[:17] + _raw(other)[17:]),  # another token's ciphertext under this nonce
        _text(b"\x02" + raw[1:]),  # another format
        _text(raw[:5]),  # header only
        base64.urlsafe_b64encode(b"members:1:7:777:v1.abc").decode(),  # the old plain form, made by hand
        "x" * 2000,
        "é" * 60,
    ]
    for forged in forgeries:
        with pytest.raises(InvalidToken):
            SEALER.unseal(forged, kind=KIND, holder=3)


def test_stray_low_bits_in_the_last_character_are_refused() -> None:
    """Two texts for the same bytes: the second was not written by the sealer, so it is refused."""
    token = SEALER.seal(b"x", kind=KIND, holder=3)  # 34 bytes: the last character carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert _raw(twin) == _raw(token)
    with pytest.raises(InvalidToken):
        SEALER.unseal(twin, kind=KIND, holder=3)


def test_two_tokens_for_one_payload_differ_and_both_open() -> None:
    first, second = (SEALER.seal(b"same position", kind=KIND, holder=4) for _ in range(2))
    assert first != second
    assert _raw(first)[5:17] != _raw(second)[5:17], "nonces repeat"
    assert SEALER.unseal(first, kind=KIND, holder=4) == SEALER.unseal(second, kind=KIND, holder=4) == b"same position"


def test_the_payload_is_not_in_the_token() -> None:
    grant, seq = 734_501_982, 9_120_034_117
    payload = f"members:1:{grant}:{seq}".encode() + grant.to_bytes(8, "big") + seq.to_bytes(8, "big")
    raw = _raw(SEALER.seal(payload, kind=KIND, holder=734_501_983))
    for part in (str(grant).encode(), str(seq).encode(), b"members", grant.to_bytes(8, "big"), seq.to_bytes(8, "big")):
        assert part not in raw


def test_a_token_opens_after_a_rotation_while_its_version_is_kept() -> None:
    keys = generate_keyring()
    old = TokenSealer(keys).seal(b"kept across an outage", kind=KIND, holder=8)
    rotated = keys.with_new_version(ROOT)
    sealer = TokenSealer(rotated)
    assert sealer.unseal(old, kind=KIND, holder=8) == b"kept across an outage"
    new = sealer.seal(b"after the rotation", kind=KIND, holder=8)
    assert _raw(new)[:5] == b"\x01\x00\x00\x00\x02"  # format 1, key version 2, in clear
    with pytest.raises(InvalidToken):
        TokenSealer(keys).unseal(new, kind=KIND, holder=8)  # a server not restarted yet

    retired = TokenSealer(rotated.without_version(ROOT, 1))
    with pytest.raises(InvalidToken):
        retired.unseal(old, kind=KIND, holder=8)
    assert retired.unseal(new, kind=KIND, holder=8) == b"after the rotation"


def test_the_version_in_clear_cannot_be_changed() -> None:
    rotated = generate_keyring().with_new_version(ROOT)
    raw = _raw(TokenSealer(rotated).seal(b"p", kind=KIND, holder=1))
    relabelled = raw[:1] + (1).to_bytes(4, "big") + raw[5:]
    with pytest.raises(InvalidToken):
        TokenSealer(rotated).unseal(_text(relabelled), kind=KIND, holder=1)


def test_another_keyring_or_another_keys_tokens_are_refused() -> None:
    token = SEALER.seal(b"p", kind=KIND, holder=1)
    with pytest.raises(InvalidToken):
        TokenSealer(generate_keyring()).unseal(token, kind=KIND, holder=1)
    other_purposes_changed = KEYS.with_new_version(KeyPurpose.IDENTIFIER_HMAC).with_new_version(KeyPurpose.AUDIT)
    assert TokenSealer(other_purposes_changed).unseal(token, kind=KIND, holder=1) == b"p"


def test_errors_and_repr_say_nothing() -> None:
    token = SEALER.seal(b"secret position", kind=KIND, holder=2)
    with pytest.raises(InvalidToken) as refused:
        SEALER.unseal(token, kind=KIND, holder=3)
    assert str(refused.value) == "invalid sealed token"
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__
    assert repr(SEALER) == "TokenSealer(current_version=1, versions=[1])"
    for secret in KEYS.keys[ROOT].values():
        assert secret.hex() not in repr(SEALER)


@pytest.mark.parametrize(("kind", "holder"), [("", 1), ("é", 1), ("k" * 65, 1), (KIND, 0), (KIND, -1), (KIND, 2**63)])
def test_a_binding_outside_the_contract_is_a_programming_error(kind: str, holder: int) -> None:
    with pytest.raises(ValueError, match="must be") as raised:
        SEALER.seal(b"p", kind=kind, holder=holder)
    assert not isinstance(raised.value, InvalidToken)
