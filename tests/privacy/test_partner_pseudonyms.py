"""Partner pseudonyms, probed as a partner would: forge, alter, swap, truncate."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.keyring import KeyPurpose, Keyring, generate_keyring
from privacy.partner_pseudonyms import InvalidPseudonym, PartnerPseudonymCodec

MAX_ID = 2**63 - 1
KEYS = generate_keyring()
CODEC = PartnerPseudonymCodec(KEYS)
subject_ids = st.integers(min_value=1, max_value=MAX_ID)
partner_ids = st.integers(min_value=1, max_value=MAX_ID)


@pytest.fixture
def keys() -> Keyring:
    return generate_keyring()


@settings(max_examples=200)
@given(partner_ids, subject_ids)
def test_round_trip(partner_id: int, subject_id: int) -> None:
    text = CODEC.encode(partner_id, subject_id)
    assert CODEC.decode(partner_id, text) == subject_id
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]{32}", text)


@settings(max_examples=200)
@given(partner_ids, partner_ids, subject_ids)
def test_two_partners_never_share_a_pseudonym_or_decode_each_others(first: int, second: int, subject: int) -> None:
    if first == second:
        return
    mine, theirs = CODEC.encode(first, subject), CODEC.encode(second, subject)
    assert mine != theirs
    with pytest.raises(InvalidPseudonym):
        CODEC.decode(second, mine)
    with pytest.raises(InvalidPseudonym):
        CODEC.decode(first, theirs)


def test_deterministic_per_partner_and_subject() -> None:
    assert CODEC.encode(3, 1234) == CODEC.encode(3, 1234) == PartnerPseudonymCodec(KEYS).encode(3, 1234)
    assert CODEC.encode(3, 1234) != CODEC.encode(3, 1235)


def test_pseudonyms_of_neighbouring_subjects_share_nothing_visible() -> None:
    texts = CODEC.encode_many(3, range(1, 200))
    assert len(set(texts)) == 199
    bodies = [base64.urlsafe_b64decode(t[3:]) for t in texts]
    assert len({b[:8] for b in bodies}) == 199  # no common prefix leaks the order of ids


def test_another_keyring_cannot_decode(keys: Keyring) -> None:
    text = CODEC.encode(3, 99)
    with pytest.raises(InvalidPseudonym):
        PartnerPseudonymCodec(keys).decode(3, text)


@settings(max_examples=200)
@given(subject_ids, st.data())
def test_any_altered_character_is_refused(subject_id: int, data: st.DataObject) -> None:
    text = CODEC.encode(7, subject_id)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.v="))
    altered = text[:position] + replacement + text[position + 1 :]
    if altered == text:
        return
    with pytest.raises(InvalidPseudonym):
        CODEC.decode(7, altered)


def test_truncated_padded_or_extended_pseudonyms_are_refused() -> None:
    text = CODEC.encode(7, 42)
    for probe in (text[:-1], text[:3], text + "=", text + "A", " " + text, text.upper(), "", "v1.", "v0" + text[2:]):
        with pytest.raises(InvalidPseudonym):
            CODEC.decode(7, probe)


def test_forged_pseudonyms_are_refused() -> None:
    forged_bodies = [bytes(24), b"\xff" * 24, (42).to_bytes(8, "big") + bytes(16), bytes(16) + (42).to_bytes(8, "big")]
    for body in forged_bodies:
        with pytest.raises(InvalidPseudonym):
            CODEC.decode(7, "v1." + base64.urlsafe_b64encode(body).decode())


def test_the_error_says_nothing() -> None:
    with pytest.raises(InvalidPseudonym) as caught:
        CODEC.decode(7, CODEC.encode(8, 42))
    assert str(caught.value) == "invalid partner pseudonym"
    assert caught.value.__cause__ is None


def test_rotation_changes_new_pseudonyms_and_old_ones_decode_until_retired(keys: Keyring) -> None:
    old = PartnerPseudonymCodec(keys).encode(5, 77)
    rotated = keys.with_new_version(KeyPurpose.PARTNER_PSEUDONYM_ROOT)
    codec = PartnerPseudonymCodec(rotated)
    new = codec.encode(5, 77)
    assert new.startswith("v2.")
    assert new != old
    assert codec.decode(5, old) == codec.decode(5, new) == 77
    with pytest.raises(InvalidPseudonym):
        codec.decode(5, "v1." + new[3:])  # the body under a claimed older version
    retired = PartnerPseudonymCodec(rotated.without_version(KeyPurpose.PARTNER_PSEUDONYM_ROOT, 1))
    with pytest.raises(InvalidPseudonym):
        retired.decode(5, old)
    assert retired.decode(5, new) == 77


@pytest.mark.parametrize("subject_id", [0, -1, 2**63, True])
def test_out_of_range_subject_ids_are_refused(subject_id: int) -> None:
    with pytest.raises(ValueError, match="subject_id must be a positive 63-bit integer"):
        CODEC.encode(1, subject_id)


def test_the_codec_repr_holds_no_key() -> None:
    secret = KEYS.current_key(KeyPurpose.PARTNER_PSEUDONYM_ROOT).secret
    assert secret.hex() not in repr(CODEC)
    assert repr(secret) not in repr(CODEC)
