"""Sealed tokens: short strings the server hands to a client and later takes back, opaque to it.

Threat model: a client (a partner app) holds tokens that name a position in our data, such as the
cursors of its member pages and of its change feed. Sealing protects what a position is made of
(sequence numbers of a log shared by every partner, row ids, how many exist) against that client
and anyone it shows its tokens to: the payload is encrypted, so a token reveals nothing but its
length and the key version. It also refuses any token this server did not seal for this very
holder and kind: one altered, truncated, extended, made by hand, sealed for another holder (another
partner) or for another kind (a feed cursor given as a member cursor) fails authentication, and the
error says nothing about why.

How: AES-256-GCM with a fresh random 96-bit nonce per token, so two tokens for one position differ
and cannot be linked (deterministic, like the pseudonyms' AES-SIV, a token would show when two
positions are equal: an unchanged snapshot, an idle feed). The associated data binds the header
(format and key version), the kind and the holder. The key is derived with HKDF-SHA256 (label
``audience.sealed-token.v1``) from each version of the PARTNER_PSEUDONYM_ROOT key rather than added
to the keyring: every existing keyring has it, and it lives and rotates with the key that already
makes what a partner is handed (its pseudonyms), so one rotation renews both and one retirement
ends both. Derived under its own label, it is independent of the per-partner pseudonym keys: one
leaking says nothing about the other. One AEAD object is built per key version, once per keyring.

Token: ``base64url(format 1 byte | key version 4 bytes | nonce 12 | ciphertext | tag 16)`` without
padding, ASCII: 44 characters plus about 4 for every 3 payload bytes. The key version is outside the
ciphertext (authenticated, not secret) so a token opens under any version still in the keyring: a
client keeping a token across a rotation can still use it; once its version is retired from the
keyring, it is refused like a forgery. New tokens are always sealed under the current version.

It does not protect against someone holding the keyring (they can open and seal any token), nor
hide a token's length or key version. With random nonces one key version should seal well under
2^32 tokens (NIST SP 800-38D); rotating the root key starts a new count. A repeated nonce would
reveal the XOR of two payloads and let whoever spots it forge tokens under that version, so a
caller for which a forged payload could do harm (not merely name another position) keeps a check
of its own inside the payload.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring, KeyringError

__all__ = ["InvalidToken", "TokenSealer"]

TOKEN_FORMAT: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
HKDF_INFO: Final = b"audience.sealed-token.v1"
MAX_TOKEN_LENGTH: Final = 1024
MAX_HOLDER: Final = 2**63 - 1
MAX_KIND_BYTES: Final = 64
KEY_PURPOSE: Final = KeyPurpose.PARTNER_PSEUDONYM_ROOT
_HEADER: Final = struct.Struct(">BI")
_MAX_VERSION: Final = 2**32 - 1
_TEXT_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


class InvalidToken(ValueError):
    """Not a token this server sealed for this holder and kind, or sealed under a retired key version.

    Deliberately without detail, so a prober learns nothing from the error.
    """

    def __init__(self) -> None:
        super().__init__("invalid sealed token")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    """The bytes of a token in exactly the text form ``_encode`` writes, or ``InvalidToken``."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or _TEXT_RE.fullmatch(token) is None:
        raise InvalidToken
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken from None
    if _encode(raw) != token:  # stray low bits in the last character: another text for the same bytes
        raise InvalidToken
    return raw


def _associated_data(header: bytes, kind: str, holder: int) -> bytes:
    label = kind.encode("ascii")
    return header + len(label).to_bytes(1, "big") + label + holder.to_bytes(8, "big")


def _check_binding(kind: str, holder: int) -> None:
    if not kind.isascii() or not 0 < len(kind) <= MAX_KIND_BYTES:
        raise ValueError(f"kind must be 1 to {MAX_KIND_BYTES} ASCII characters")
    if isinstance(holder, bool) or not isinstance(holder, int) or not 0 < holder <= MAX_HOLDER:
        raise ValueError("holder must be a positive 63-bit integer")


def _derived(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=HKDF_INFO).derive(secret)


class TokenSealer:
    """Seals payloads for a holder and a kind under the current key version; opens any version kept."""

    __slots__ = ("_aeads", "_current")

    def __init__(self, keyring: Keyring) -> None:
        versions = keyring.versions(KEY_PURPOSE)
        if any(not 0 < version <= _MAX_VERSION for version in versions):
            raise KeyringError(f"sealed tokens need {KEY_PURPOSE.value} key versions below 2^32")
        self._current = keyring.current[KEY_PURPOSE]
        self._aeads = {version: AESGCM(_derived(keyring.key(KEY_PURPOSE, version).secret)) for version in versions}

    def __repr__(self) -> str:
        return f"TokenSealer(current_version={self._current}, versions={sorted(self._aeads)})"

    def seal(self, payload: bytes, *, kind: str, holder: int) -> str:
        """An ASCII token that only ``unseal`` with the same ``kind`` and ``holder`` opens."""
        _check_binding(kind, holder)
        header = _HEADER.pack(TOKEN_FORMAT, self._current)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self._current].encrypt(nonce, payload, _associated_data(header, kind, holder))
        return _encode(header + nonce + sealed)

    def unseal(self, token: str, *, kind: str, holder: int) -> bytes:
        """The payload ``token`` was sealed with, if this server sealed it for ``kind`` and ``holder``
        under a key version still in the keyring; ``InvalidToken`` otherwise."""
        _check_binding(kind, holder)
        raw = _decode(token)
        if len(raw) < _HEADER.size + NONCE_BYTES + TAG_BYTES:
            raise InvalidToken
        header = raw[: _HEADER.size]
        token_format, version = _HEADER.unpack(header)
        aead = self._aeads.get(version)
        if token_format != TOKEN_FORMAT or aead is None:
            raise InvalidToken
        nonce = raw[_HEADER.size : _HEADER.size + NONCE_BYTES]
        try:
            return aead.decrypt(nonce, raw[_HEADER.size + NONCE_BYTES :], _associated_data(header, kind, holder))
        except InvalidTag:
            raise InvalidToken from None
