"""Identifier pseudonyms: keyed HMAC-SHA256 of a normalized, domain-tagged identifier.

Threat model: protects identifiers at rest against anyone who reads the database, its
backups, exports or logs without the IDENTIFIER_HMAC key. An unkeyed hash of an email can be
reversed by hashing a list of known emails; a keyed one cannot, so the stored pseudonyms
reveal nothing and link nothing outside this server. Domain tagging (kind, partner scope)
means the same text as an email and as a customer id, or as two partners' user ids, never
produces the same pseudonym. The key version travels with each pseudonym so keys can be
rotated; lookups then compute one pseudonym per version still in the keyring.

It does not hide *equality*: one identifier always yields one pseudonym under one key,
which is the point (lookup, suppression, merging). Whoever holds the key and a candidate
list can test membership, so the key is as sensitive as the identifiers themselves. It does
not normalize: callers pass values produced by ``privacy.identifiers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from privacy.identifiers import IdentifierKind, NormalizedIdentifier, domain_prefix
from privacy.keyring import KeyPurpose, Keyring, KeyringError

__all__ = ["DIGEST_BYTES", "Pseudonym", "Pseudonymizer"]

DIGEST_BYTES = 32


@dataclass(frozen=True, slots=True)
class Pseudonym:
    """A 32-byte HMAC digest and the IDENTIFIER_HMAC key version that produced it.

    The digest is hidden from ``repr``: a pseudonym is still personal data, and one printed
    in two logs would link them.
    """

    key_version: int
    digest: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Pseudonym(key_version={self.key_version}, digest=<{len(self.digest)} bytes>)"


class Pseudonymizer:
    """Pseudonyms under the keyring's IDENTIFIER_HMAC keys, as of construction time.

    Each key's HMAC state is computed once and copied per message, which is about three
    times faster than keying a fresh HMAC every time. Build a new one after a key rotation.
    """

    __slots__ = ("_current", "_current_keyed", "_keyed")

    def __init__(self, keyring: Keyring) -> None:
        self._current = keyring.current[KeyPurpose.IDENTIFIER_HMAC]
        self._keyed: dict[int, HMAC] = {
            version: HMAC(keyring.key(KeyPurpose.IDENTIFIER_HMAC, version).secret, hashes.SHA256())
            for version in keyring.versions(KeyPurpose.IDENTIFIER_HMAC)
        }
        self._current_keyed = self._keyed[self._current]

    def __repr__(self) -> str:
        return f"Pseudonymizer(current_version={self._current}, versions={sorted(self._keyed)})"

    @property
    def current_version(self) -> int:
        return self._current

    @property
    def versions(self) -> list[int]:
        """Key versions, current first, then newest to oldest."""
        return [self._current, *sorted((v for v in self._keyed if v != self._current), reverse=True)]

    def pseudonym(self, identifier: NormalizedIdentifier, *, key_version: int | None = None) -> Pseudonym:
        """The pseudonym under the current key, or under ``key_version`` when given."""
        if key_version is None:
            version, mac = self._current, self._current_keyed.copy()
        else:
            version, mac = key_version, self._keyed_for(key_version).copy()
        mac.update(identifier.domain_tagged())
        return Pseudonym(version, mac.finalize())

    def pseudonyms_for_all_versions(self, identifier: NormalizedIdentifier) -> list[Pseudonym]:
        """One pseudonym per key version, current first: what a lookup must match against."""
        return [self.pseudonym(identifier, key_version=version) for version in self.versions]

    def digest_many(
        self,
        kind: IdentifierKind,
        values: Sequence[str],
        partner_id: int | None = None,
        *,
        key_version: int | None = None,
    ) -> list[bytes]:
        """Digests of already-normalized ``values`` of one kind, under the current key by default.

        Equal to ``pseudonym(NormalizedIdentifier(kind, value, partner_id)).digest`` for each
        value, without building an object per value; the bulk ingestion path.
        """
        prefix = domain_prefix(kind, partner_id)
        base = self._keyed_for(self._current if key_version is None else key_version).copy()
        base.update(prefix)
        copy = base.copy
        digests: list[bytes] = []
        append = digests.append
        for index, value in enumerate(values):
            if not value:
                raise ValueError(f"values[{index}] is empty; normalize and drop nulls first")
            encoded = value.encode("utf-8")
            mac = copy()
            mac.update(len(encoded).to_bytes(4, "big") + encoded)
            append(mac.finalize())
        return digests

    def _keyed_for(self, version: int) -> HMAC:
        try:
            return self._keyed[version]
        except KeyError:
            raise KeyringError(f"keyring has no identifier_hmac key version {version}") from None
