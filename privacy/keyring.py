"""Versioned secret keys, loaded from a 0600 file or from one environment variable.

Threat model: protects the server's root secrets (key-encryption keys, identifier-HMAC keys,
the partner pseudonym root and the audit chain key) against a reader of the database or of
its backups, who must never be able to decrypt PII, reverse a pseudonym or re-chain the audit
log. A keyring file readable by group or others is refused, because on a shared host that is
the same as publishing it. It does not protect against someone who can read this process's
memory or the keyring file itself: that person holds the keys.

No key ever appears in a ``repr``, a log line, an error message or a metric.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from privacy.private_files import make_private_directory

KEY_BYTES = 32
KEYRING_FORMAT = 1


class KeyPurpose(enum.StrEnum):
    """Each secret serves exactly one purpose, so one leak never unlocks another domain."""

    KEK = "kek"
    IDENTIFIER_HMAC = "identifier_hmac"
    PARTNER_PSEUDONYM_ROOT = "partner_pseudonym_root"
    AUDIT = "audit"


class KeyringError(Exception):
    """The keyring is missing, unreadable, too widely readable or malformed.

    Messages name the file or the missing part, never a key.
    """


@dataclass(frozen=True, slots=True)
class VersionedKey:
    version: int
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"VersionedKey(version={self.version}, secret=<hidden>)"


@dataclass(frozen=True, slots=True)
class Keyring:
    """All versions of every key, and which version is current for new writes."""

    keys: Mapping[KeyPurpose, Mapping[int, bytes]] = field(repr=False)
    current: Mapping[KeyPurpose, int]

    def __repr__(self) -> str:
        return f"Keyring(current={dict(self.current)})"

    def current_key(self, purpose: KeyPurpose) -> VersionedKey:
        return self.key(purpose, self.current[purpose])

    def key(self, purpose: KeyPurpose, version: int) -> VersionedKey:
        try:
            return VersionedKey(version, self.keys[purpose][version])
        except KeyError:
            raise KeyringError(f"keyring has no {purpose.value} key version {version}") from None

    def versions(self, purpose: KeyPurpose) -> list[int]:
        return sorted(self.keys[purpose])

    def with_new_version(self, purpose: KeyPurpose) -> Keyring:
        """A copy with a fresh key for ``purpose`` that becomes current; old versions stay readable."""
        version = max(self.keys[purpose]) + 1
        keys = {p: dict(v) for p, v in self.keys.items()}
        keys[purpose][version] = secrets.token_bytes(KEY_BYTES)
        return Keyring(keys=keys, current={**self.current, purpose: version})

    def without_version(self, purpose: KeyPurpose, version: int) -> Keyring:
        """A copy with ``version`` removed; refusing the current one, which new data depends on."""
        if self.current[purpose] == version:
            raise KeyringError(f"cannot retire the current {purpose.value} key version {version}")
        if version not in self.keys[purpose]:
            raise KeyringError(f"keyring has no {purpose.value} key version {version}")
        keys = {p: dict(v) for p, v in self.keys.items()}
        del keys[purpose][version]
        return Keyring(keys=keys, current=dict(self.current))


def generate_keyring() -> Keyring:
    return Keyring(
        keys={purpose: {1: secrets.token_bytes(KEY_BYTES)} for purpose in KeyPurpose},
        current=dict.fromkeys(KeyPurpose, 1),
    )


def dumps_keyring(keyring: Keyring) -> str:
    document = {
        "format": KEYRING_FORMAT,
        "current": {purpose.value: version for purpose, version in keyring.current.items()},
        "keys": {
            purpose.value: {
                str(version): base64.b64encode(secret).decode("ascii") for version, secret in versions.items()
            }
            for purpose, versions in keyring.keys.items()
        },
    }
    return json.dumps(document, indent=2, sort_keys=True)


def loads_keyring(text: str, *, origin: str) -> Keyring:
    """Parse a keyring document; ``origin`` names the file or variable in errors."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise KeyringError(f"{origin} is not a valid keyring (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != KEYRING_FORMAT:
        raise KeyringError(f"{origin} is not a keyring of format {KEYRING_FORMAT}")
    raw_keys, raw_current = document.get("keys"), document.get("current")
    if not isinstance(raw_keys, dict) or not isinstance(raw_current, dict):
        raise KeyringError(f"{origin} lacks its 'keys' or 'current' section")
    keys: dict[KeyPurpose, dict[int, bytes]] = {}
    current: dict[KeyPurpose, int] = {}
    for purpose in KeyPurpose:
        versions = raw_keys.get(purpose.value)
        if not isinstance(versions, dict) or not versions:
            raise KeyringError(f"{origin} has no {purpose.value} key")
        keys[purpose] = {
            _parse_version(v, origin, purpose): _decode_secret(s, origin, purpose) for v, s in versions.items()
        }
        chosen = raw_current.get(purpose.value)
        if not isinstance(chosen, int) or chosen not in keys[purpose]:
            raise KeyringError(f"{origin} names no valid current {purpose.value} key version")
        current[purpose] = chosen
    return Keyring(keys=keys, current=current)


def _parse_version(raw: str, origin: str, purpose: KeyPurpose) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise KeyringError(f"{origin} has a malformed {purpose.value} key version")
    return int(raw)


def _decode_secret(raw: object, origin: str, purpose: KeyPurpose) -> bytes:
    try:
        secret = base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{origin} has a malformed {purpose.value} key (not base64)") from None
    if len(secret) != KEY_BYTES:
        raise KeyringError(f"{origin} has a {purpose.value} key that is not {KEY_BYTES * 8} bits")
    return secret


def load_keyring_file(path: Path) -> Keyring:
    """Read a keyring file, refusing one that group or others could read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyringError(
            f"keyring file {path} does not exist: restore it from your backup, or point AUDIENCE_KEYRING_PATH at it "
            "(`audience init` creates a keyring only for a database that holds no data yet)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"keyring file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            "run `chmod 600` on it"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise KeyringError(f"keyring file {path} cannot be read ({error.strerror})") from None
    return loads_keyring(text, origin=f"keyring file {path}")


def write_keyring_file(path: Path, keyring: Keyring, *, replace: bool = False) -> None:
    """Write atomically with mode 0600 from the first byte; never overwrite unless asked."""
    if path.exists() and not replace:
        raise KeyringError(f"keyring file {path} already exists; refusing to overwrite it")
    make_private_directory(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(dumps_keyring(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
