"""Partner pseudonyms: the only subject id a partner ever sees, different for every partner.

Threat model: protects the internal subject id, and the linkability of one person across
partners, against partners themselves (each sees only its own pseudonyms), against two or
more partners pooling their data (their pseudonyms for one person share nothing), and
against a partner that forges, alters or replays another partner's pseudonym to probe
someone else's visitors (decoding refuses anything this partner's key did not produce, and
says nothing about why).

How: AES-SIV (RFC 5297, deterministic authenticated encryption) of the 8-byte subject id
under a 512-bit key derived per partner and key version with HKDF-SHA256 from the
PARTNER_PSEUDONYM_ROOT key. Deterministic, so no mapping table is needed and a partner sees
a stable id; authenticated, so decoding is also verification. Text form:
``v<version>.<base64url of the 24-byte SIV output>`` (35 characters for version 1).

It does not protect against someone holding the root key (they can decode every partner's
pseudonyms), and it does not hide *equality* within one partner: the same subject always
maps to the same pseudonym, which is what a partner needs. Rotating the root key changes
every pseudonym partners see; old ones keep decoding while their version is in the keyring.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import NewType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring

__all__ = ["InvalidPseudonym", "PartnerPseudonym", "PartnerPseudonymCodec"]

PartnerPseudonym = NewType("PartnerPseudonym", str)

MAX_ID = 2**63 - 1
SIV_KEY_BYTES = 64
SEALED_BYTES = 16 + 8  # SIV tag + encrypted 8-byte subject id
ENCODED_BYTES = 32  # base64url of 24 bytes, no padding needed
MAX_TEXT_LENGTH = 48
HKDF_INFO_TAG = b"audience.partner-pseudonym.v1"
_TEXT_RE = re.compile(r"v([1-9][0-9]{0,8})\.([A-Za-z0-9_-]{32})")
_CACHE_LIMIT = 4096


class InvalidPseudonym(ValueError):
    """Not a pseudonym this partner's key produced: forged, altered, truncated or foreign.

    Deliberately without detail, so a prober learns nothing from the error.
    """

    def __init__(self) -> None:
        super().__init__("invalid partner pseudonym")


def _check_id(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ValueError(f"{name} must be a positive 63-bit integer")


def _associated_data(partner_id: int, version: int) -> list[bytes]:
    return [HKDF_INFO_TAG, partner_id.to_bytes(8, "big"), version.to_bytes(4, "big")]


class PartnerPseudonymCodec:
    """Encodes subject ids for a partner and decodes that partner's pseudonyms back.

    Derived AES-SIV objects are cached per (partner, key version); the cache is bounded
    because partner ids come from callers.
    """

    __slots__ = ("_ciphers", "_current", "_roots")

    def __init__(self, keyring: Keyring) -> None:
        self._current = keyring.current[KeyPurpose.PARTNER_PSEUDONYM_ROOT]
        self._roots: dict[int, bytes] = {
            version: keyring.key(KeyPurpose.PARTNER_PSEUDONYM_ROOT, version).secret
            for version in keyring.versions(KeyPurpose.PARTNER_PSEUDONYM_ROOT)
        }
        self._ciphers: dict[tuple[int, int], AESSIV] = {}

    def __repr__(self) -> str:
        return f"PartnerPseudonymCodec(current_version={self._current}, versions={sorted(self._roots)})"

    def encode(self, partner_id: int, subject_id: int) -> PartnerPseudonym:
        _check_id("partner_id", partner_id)
        _check_id("subject_id", subject_id)
        return self._encode(self._cipher(partner_id, self._current), partner_id, subject_id)

    def encode_many(self, partner_id: int, subject_ids: Iterable[int]) -> list[PartnerPseudonym]:
        """Pseudonyms for a page of subjects, deriving the partner's key once."""
        _check_id("partner_id", partner_id)
        cipher = self._cipher(partner_id, self._current)
        result: list[PartnerPseudonym] = []
        for subject_id in subject_ids:
            _check_id("subject_id", subject_id)
            result.append(self._encode(cipher, partner_id, subject_id))
        return result

    def decode(self, partner_id: int, text: str) -> int:
        """The subject id behind ``text``, if and only if this partner's key produced it."""
        _check_id("partner_id", partner_id)
        if not isinstance(text, str) or len(text) > MAX_TEXT_LENGTH:
            raise InvalidPseudonym
        match = _TEXT_RE.fullmatch(text)
        if match is None:
            raise InvalidPseudonym
        version = int(match.group(1))
        if version not in self._roots:
            raise InvalidPseudonym
        try:
            sealed = base64.urlsafe_b64decode(match.group(2))
        except (binascii.Error, ValueError):
            raise InvalidPseudonym from None
        try:
            plain = self._cipher(partner_id, version).decrypt(sealed, _associated_data(partner_id, version))
        except InvalidTag:
            raise InvalidPseudonym from None
        subject_id = int.from_bytes(plain, "big")
        if len(plain) != 8 or not 0 < subject_id <= MAX_ID:
            raise InvalidPseudonym
        return subject_id

    def _encode(self, cipher: AESSIV, partner_id: int, subject_id: int) -> PartnerPseudonym:
        sealed = cipher.encrypt(subject_id.to_bytes(8, "big"), _associated_data(partner_id, self._current))
        body = base64.urlsafe_b64encode(sealed).decode("ascii")
        return PartnerPseudonym(f"v{self._current}.{body}")

    def _cipher(self, partner_id: int, version: int) -> AESSIV:
        cipher = self._ciphers.get((partner_id, version))
        if cipher is None:
            if len(self._ciphers) >= _CACHE_LIMIT:
                self._ciphers.clear()
            derived = HKDF(
                algorithm=hashes.SHA256(),
                length=SIV_KEY_BYTES,
                salt=None,
                info=HKDF_INFO_TAG + partner_id.to_bytes(8, "big") + version.to_bytes(4, "big"),
            ).derive(self._roots[version])
            cipher = AESSIV(derived)
            self._ciphers[(partner_id, version)] = cipher
        return cipher
