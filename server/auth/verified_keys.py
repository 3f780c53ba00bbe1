"""API keys this worker verified lately, trusted for a few seconds so that a request skips the read.

Reading the key (a worker-thread hop, a session, one indexed select) was the largest single cost
of a small request; a partner asking thousands of lookups a second sends the same key each time.

The trade-off is revocation, bounded by ``ttl_seconds`` (``AUDIENCE_API_KEY_CACHE_SECONDS``): an
entry is trusted that long after it was read, then read again. ``forget`` drops a key at once in
this worker (``revokeApiKey`` calls it); in other workers, and for a revocation by the CLI, the
key keeps working there for at most ``ttl_seconds``. ``ttl_seconds=0`` keeps nothing.

What is held: only keys that verified (a wrong token is read every time, so random tokens cannot
fill memory), keyed by the SHA-256 of the whole token, so the secret is not kept in the clear;
at most ``max_entries``, the whole map dropped when full (keys are few; a flood of valid keys
costs reads, not memory). Touched from the event loop's thread only.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.principal import Principal

__all__ = ["VerifiedKeys"]

DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    read_at: float


class VerifiedKeys:
    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}

    def get(self, token: str) -> Principal | None:
        """The principal read for this token less than ``ttl_seconds`` ago, if any."""
        entry = self._entries.get(_digest(token))
        if entry is None:
            return None
        if self._clock() - entry.read_at >= self.ttl_seconds:
            del self._entries[_digest(token)]
            return None
        return entry.principal

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[_digest(token)] = _Entry(principal, self._clock())

    def forget(self, key_id: str) -> None:
        """Drop every entry of this key (revoked in this worker): rare, so a scan."""
        for digest in [d for d, entry in self._entries.items() if entry.principal.key_id == key_id]:
            del self._entries[digest]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
