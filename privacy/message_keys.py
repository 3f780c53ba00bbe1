"""Message keys: a sender's idempotency key (``messageId``) kept only as a keyed hash.

Threat model: a sender may write anything into a messageId — an email, a name, an order
number — and it is the one value of a record that must be kept, for as long as the record could
be sent again, to tell a resend from a new record. Kept as HMAC-SHA256 under a key of its own,
it reveals nothing to whoever reads the database, a dump or a backup without the keyring:
testing a guess needs the key. The key is derived (HKDF-SHA256, a label of its own) from each
IDENTIFIER_HMAC version rather than added to the keyring, so every existing keyring has it and it
rotates with that key; derived, a message key never equals the pseudonym of the same text as an
identifier, and one leaking says nothing about the other.

It does not hide *equality*, which is the point: one messageId gives one key per key version.
Lookups hash under every version still in the keyring; once a version is retired, records keyed
under it are no longer recognised when sent again. It does not protect against someone holding
the keyring, who can test guesses.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring, KeyringError

__all__ = ["MESSAGE_KEY_BYTES", "MessageKeys"]

MESSAGE_KEY_BYTES = 32
HKDF_INFO = b"audience.message-key.v1"


def _derived(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=MESSAGE_KEY_BYTES, salt=None, info=HKDF_INFO).derive(secret)


class MessageKeys:
    """Keyed hashes of message ids under keys derived from the keyring's IDENTIFIER_HMAC versions.

    Each version's HMAC state is computed once and copied per message, as ``Pseudonymizer`` does.
    """

    __slots__ = ("_current", "_keyed")

    def __init__(self, keyring: Keyring) -> None:
        self._current = keyring.current[KeyPurpose.IDENTIFIER_HMAC]
        self._keyed = {
            version: HMAC(_derived(keyring.key(KeyPurpose.IDENTIFIER_HMAC, version).secret), hashes.SHA256())
            for version in keyring.versions(KeyPurpose.IDENTIFIER_HMAC)
        }

    def __repr__(self) -> str:
        return f"MessageKeys(current_version={self._current}, versions={sorted(self._keyed)})"

    @property
    def versions(self) -> list[int]:
        """Key versions, current first, then newest to oldest: what a lookup must hash under."""
        return [self._current, *sorted((v for v in self._keyed if v != self._current), reverse=True)]

    def digest_many(self, message_ids: Sequence[str], *, key_version: int | None = None) -> list[bytes]:
        """One key per message id, under the current version unless ``key_version`` is given."""
        version = self._current if key_version is None else key_version
        try:
            base = self._keyed[version]
        except KeyError:
            raise KeyringError(f"keyring has no identifier_hmac key version {version}") from None
        copy = base.copy
        digests: list[bytes] = []
        append = digests.append
        for message_id in message_ids:
            mac = copy()
            mac.update(message_id.encode("utf-8"))
            append(mac.finalize())
        return digests
