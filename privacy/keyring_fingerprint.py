"""Which keyring a database belongs to, recorded without recording any key.

Threat model: protects the data against the operator's mix-up, not against an attacker. A
database opened with another installation's keyring (a fresh ``init`` over a populated data
directory, a path or variable naming the wrong file) would store the same people again under
new pseudonyms and sign audit entries that later read as tampering. So the database records a
fingerprint of each version of the keys that identify its data — identifier HMAC, partner
pseudonym root, audit — and a keyring belongs to it when it holds at least one of those versions
and contradicts none.

Each fingerprint is HKDF-SHA256 of the key with a label naming this use, the purpose and the
version: a pseudorandom function of the key on a fixed input, so it reveals nothing about the
key, cannot stand in for it, and shares no input with the key's real uses (HMACs of identifiers
and audit entries, the partner HKDF under its own label). The KEK is left out: it is rotated and
retired routinely, and a keyring whose KEK alone differs is caught when the database is first
checked against its data keys. Someone who can write the database can delete the fingerprints;
the next use then checks the keyring against the data again.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring

__all__ = ["FINGERPRINTED", "KeyFingerprint", "belongs", "fingerprints", "unrecorded"]

FINGERPRINTED = (KeyPurpose.IDENTIFIER_HMAC, KeyPurpose.PARTNER_PSEUDONYM_ROOT, KeyPurpose.AUDIT)
HKDF_INFO_TAG = b"audience.keyring-fingerprint.v1"
DIGEST_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeyFingerprint:
    purpose: KeyPurpose
    version: int
    digest: bytes = field(repr=False)


def _digest(secret: bytes, purpose: KeyPurpose, version: int) -> bytes:
    info = HKDF_INFO_TAG + b"/" + purpose.value.encode("ascii") + b"/" + version.to_bytes(4, "big")
    return HKDF(algorithm=hashes.SHA256(), length=DIGEST_BYTES, salt=None, info=info).derive(secret)


def fingerprints(keyring: Keyring) -> list[KeyFingerprint]:
    """One per version of every fingerprinted key in the keyring."""
    return [
        KeyFingerprint(purpose, version, _digest(keyring.key(purpose, version).secret, purpose, version))
        for purpose in FINGERPRINTED
        for version in keyring.versions(purpose)
    ]


def belongs(recorded: Iterable[KeyFingerprint], keyring: Keyring) -> bool:
    """At least one recorded key version is in the keyring, and every one that is has the same secret.

    Versions the keyring no longer holds are ignored (a retired key), so are new ones it adds
    (a rotation): only a version held under another secret, or no shared version at all, fails.
    """
    own = {(fp.purpose, fp.version): fp.digest for fp in fingerprints(keyring)}
    shared = [(fp, own[fp.purpose, fp.version]) for fp in recorded if (fp.purpose, fp.version) in own]
    return bool(shared) and all(hmac.compare_digest(fp.digest, digest) for fp, digest in shared)


def unrecorded(recorded: Iterable[KeyFingerprint], keyring: Keyring) -> list[KeyFingerprint]:
    """The keyring's versions the database has not recorded yet (added by a rotation)."""
    known = {(fp.purpose, fp.version) for fp in recorded}
    return [fp for fp in fingerprints(keyring) if (fp.purpose, fp.version) not in known]
