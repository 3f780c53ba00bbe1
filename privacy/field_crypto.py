"""Per-subject data keys (DEKs), wrapped under the KEK, and AES-256-GCM field encryption.

Threat model: protects PII attributes at rest against anyone who reads the database, a
dump or a backup without the KEK: every PII field is AES-256-GCM under its subject's own
random 256-bit DEK, and DEKs are stored only wrapped by the KEK. It also protects against
someone who can *write* the database and moves ciphertexts around: associated data binds
each field ciphertext to its subject, field name and format version, and each wrapped DEK to
its subject and KEK version, so a value copied to another row, another column or another
subject fails to decrypt instead of being shown as someone else's data. Erasure deletes the
wrapped DEK (crypto-shredding): every copy of that subject's ciphertexts, including in
backups taken earlier, becomes unreadable, provided the backup holding the wrapped DEK is
itself expired.

It does not protect against someone holding the KEK *and* the wrapped DEKs (that is, the
keyring and a database copy), against this process's memory, or against the length of a
value (ciphertext length = plaintext length + 29 bytes). Decryption errors say nothing about
the cause.

Why AES-GCM rather than AES key wrap (RFC 3394/5649) for DEKs: key wrap has no associated
data, so binding a DEK to its subject would need a second construction; GCM binds it
natively and is the primitive already used for fields. With random 96-bit nonces, one KEK
version must wrap well under 2^32 keys (NIST SP 800-38D); rotate the KEK long before that.

Exceptions::

    DecryptionFailed      ciphertext or wrapped key refused (altered, moved, wrong key)
    MissingDataKey        a bulk item names a subject with no DEK in the mapping
    privacy.keyring.KeyringError   a wrapped key names a KEK version no longer in the keyring
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy.keyring import KeyPurpose, Keyring, KeyringError

__all__ = [
    "DATA_KEY_BYTES",
    "FORMAT_VERSION",
    "DecryptionFailed",
    "KeyWrapper",
    "MissingDataKey",
    "SubjectCipher",
    "WrappedKey",
    "decrypt_many",
    "encrypt_many",
    "new_data_key",
    "rewrap",
    "unwrap_data_key",
    "wrap_data_key",
]

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT_VERSION = 1
MAX_ID = 2**63 - 1
_VERSION_BYTE = bytes([FORMAT_VERSION])
_FIELD_AAD_TAG = b"audience.field"
_WRAP_AAD_TAG = b"audience.dek.v1"
_MIN_FIELD_BLOB = 1 + NONCE_BYTES + TAG_BYTES
_BODY_START = 1 + NONCE_BYTES
_urandom = os.urandom
_WRAPPED_BLOB = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES


class DecryptionFailed(Exception):
    """A ciphertext or wrapped key was refused. No detail, on purpose."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class MissingDataKey(LookupError):
    """A bulk item's subject has no data key in the mapping given (erased, or not loaded)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"item {index} names a subject with no data key in this batch")
        self.index = index


def _check_subject(subject_id: int) -> None:
    if isinstance(subject_id, bool) or not isinstance(subject_id, int) or not 0 < subject_id <= MAX_ID:
        raise ValueError("subject_id must be a positive 63-bit integer")


def _check_data_key(dek: bytes) -> None:
    if not isinstance(dek, bytes) or len(dek) != DATA_KEY_BYTES:
        raise ValueError(f"a data key must be {DATA_KEY_BYTES} bytes")


def new_data_key() -> bytes:
    """A fresh random 256-bit DEK, for a subject seen for the first time."""
    return os.urandom(DATA_KEY_BYTES)


# --- data keys under the KEK -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A DEK encrypted under KEK ``kek_version``: nonce (12) + ciphertext (32) + tag (16)."""

    kek_version: int
    blob: bytes = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return f"WrappedKey(kek_version={self.kek_version}, blob=<{len(self.blob)} bytes>)"


def _wrap_aad(subject_id: int, kek_version: int) -> bytes:
    return _WRAP_AAD_TAG + subject_id.to_bytes(8, "big") + kek_version.to_bytes(4, "big")


class KeyWrapper:
    """Wraps and unwraps DEKs under the keyring's KEKs, caching one AES-GCM object per version."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keyring: Keyring) -> None:
        self._current = keyring.current[KeyPurpose.KEK]
        self._ciphers: dict[int, AESGCM] = {
            version: AESGCM(keyring.key(KeyPurpose.KEK, version).secret) for version in keyring.versions(KeyPurpose.KEK)
        }

    def __repr__(self) -> str:
        return f"KeyWrapper(current_version={self._current}, versions={sorted(self._ciphers)})"

    @property
    def current_version(self) -> int:
        return self._current

    def wrap(self, dek: bytes, subject_id: int) -> WrappedKey:
        _check_data_key(dek)
        _check_subject(subject_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, dek, _wrap_aad(subject_id, self._current))
        return WrappedKey(self._current, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, subject_id: int) -> bytes:
        _check_subject(subject_id)
        cipher = self._ciphers.get(wrapped.kek_version)
        if cipher is None:
            # Not a tampering verdict: the operator retired a KEK version still in use.
            raise KeyringError(f"keyring has no kek key version {wrapped.kek_version}")
        blob = wrapped.blob
        if len(blob) != _WRAPPED_BLOB:
            raise DecryptionFailed
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _wrap_aad(subject_id, wrapped.kek_version))
        except InvalidTag:
            raise DecryptionFailed from None

    def rewrap(self, wrapped: WrappedKey, subject_id: int) -> WrappedKey:
        """The same DEK under the current KEK; unchanged if already there (so reruns are cheap)."""
        if wrapped.kek_version == self._current:
            self.unwrap(wrapped, subject_id)  # still verify: a rotation must not bless a forgery
            return wrapped
        return self.wrap(self.unwrap(wrapped, subject_id), subject_id)


def wrap_data_key(dek: bytes, subject_id: int, keyring: Keyring) -> WrappedKey:
    """One-off wrap under the current KEK; use ``KeyWrapper`` for many."""
    return KeyWrapper(keyring).wrap(dek, subject_id)


def unwrap_data_key(wrapped: WrappedKey, subject_id: int, keyring: Keyring) -> bytes:
    """One-off unwrap; use ``KeyWrapper`` for many."""
    return KeyWrapper(keyring).unwrap(wrapped, subject_id)


def rewrap(wrapped: WrappedKey, subject_id: int, keyring: Keyring) -> WrappedKey:
    """Re-wrap under the current KEK for KEK rotation; field ciphertexts are untouched."""
    return KeyWrapper(keyring).rewrap(wrapped, subject_id)


# --- fields under a DEK ----------------------------------------------------------------------


class SubjectCipher:
    """Encrypts and decrypts one subject's fields under its DEK.

    Ciphertext: format version (1 byte) + nonce (12) + AES-GCM ciphertext and tag. The
    associated data is ``"audience.field" + version + subject id + field name``; all parts but
    the last have fixed length, so the encoding is unambiguous. The AES-GCM object and each
    field's associated data are built once per instance: this is the hot path of ingestion.
    """

    __slots__ = ("_aad_prefix", "_aads", "_decrypt", "_encrypt", "subject_id")

    def __init__(self, subject_id: int, dek: bytes) -> None:
        _check_subject(subject_id)
        _check_data_key(dek)
        self.subject_id = subject_id
        self._aad_prefix = _FIELD_AAD_TAG + _VERSION_BYTE + subject_id.to_bytes(8, "big")
        cipher = AESGCM(dek)
        self._encrypt = cipher.encrypt
        self._decrypt = cipher.decrypt
        self._aads: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"SubjectCipher(subject_id={self.subject_id}, dek=<hidden>)"

    def encrypt(self, field: str, plaintext: str) -> bytes:
        aad = self._aads.get(field) or self._new_aad(field)
        try:
            data = plaintext.encode()
        except UnicodeEncodeError:
            # The codec's exception carries the whole value; never let it travel.
            raise ValueError(f"{field} is not valid Unicode text") from None
        nonce = _urandom(NONCE_BYTES)
        return _VERSION_BYTE + nonce + self._encrypt(nonce, data, aad)

    def decrypt(self, field: str, blob: bytes) -> str:
        aad = self._aads.get(field) or self._new_aad(field)
        if len(blob) < _MIN_FIELD_BLOB or blob[0] != FORMAT_VERSION:
            raise DecryptionFailed
        try:
            return self._decrypt(blob[1:_BODY_START], blob[_BODY_START:], aad).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionFailed from None

    def _new_aad(self, field: str) -> bytes:
        if not isinstance(field, str) or not field:
            raise ValueError("field name must be non-empty text")
        aad = self._aads[field] = self._aad_prefix + field.encode()
        return aad


def _new_cipher(deks: Mapping[int, bytes], subject_id: int, index: int) -> SubjectCipher:
    dek = deks.get(subject_id)
    if dek is None:
        raise MissingDataKey(index)
    return SubjectCipher(subject_id, dek)


def encrypt_many(items: Iterable[tuple[int, str, str]], deks: Mapping[int, bytes]) -> list[bytes]:
    """Encrypt ``(subject_id, field, plaintext)`` items, one cipher per subject for the batch."""
    ciphers: dict[int, SubjectCipher] = {}
    blobs: list[bytes] = []
    for index, (subject_id, field, plaintext) in enumerate(items):
        cipher = ciphers.get(subject_id)
        if cipher is None:
            cipher = ciphers[subject_id] = _new_cipher(deks, subject_id, index)
        blobs.append(cipher.encrypt(field, plaintext))
    return blobs


def decrypt_many(items: Iterable[tuple[int, str, bytes]], deks: Mapping[int, bytes]) -> list[str]:
    """Decrypt ``(subject_id, field, blob)`` items; a subject without a DEK raises MissingDataKey."""
    ciphers: dict[int, SubjectCipher] = {}
    plaintexts: list[str] = []
    for index, (subject_id, field, blob) in enumerate(items):
        cipher = ciphers.get(subject_id)
        if cipher is None:
            cipher = ciphers[subject_id] = _new_cipher(deks, subject_id, index)
        plaintexts.append(cipher.decrypt(field, blob))
    return plaintexts
