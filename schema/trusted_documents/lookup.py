"""Which registered document a request asks for, and its parsed tree from a bounded per-process cache.

A request names a document by ``documentId: "sha256:<hex>"`` (the GraphQL-over-HTTP trusted
documents form) or by Apollo's ``extensions.persistedQuery.sha256Hash``. The tree is parsed once
per process, when a hash is first asked for, and kept in an LRU: the text was checked at
registration and a hash names one text forever, so nothing in the cache ever needs invalidating.
Who may use it can change (a partner's document becomes global when a second owner registers
it), so an entry the caller may not use is read again from the database before the answer is no.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial

from anyio import CapacityLimiter, to_thread
from graphql import DocumentNode, parse
from starlette.concurrency import run_in_threadpool

from schema.lru_cache import LruCache
from server.auth.principal import Principal, Role
from server.runtime import Runtime
from server.trusted_documents import service as trusted_documents
from server.trusted_documents.service import StoredDocument

__all__ = ["REQUESTED_OVER_WEBSOCKET", "DocumentRequest", "TrustedDocuments", "requested_document"]

DOCUMENT_ID = "documentId"


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """A request for a registered document; ``sha256`` None when the id is malformed (answered as unknown)."""

    sha256: str | None


# graphql-transport-ws gives Strawberry no way to pass a subscribe message's extensions on: the
# socket handler sets this around starting the operation, whose task inherits it.
REQUESTED_OVER_WEBSOCKET: ContextVar[DocumentRequest | None] = ContextVar("requested_over_websocket", default=None)


def requested_document(payload: Mapping[str, object] | None) -> DocumentRequest | None:
    """The document a request payload (or its ``extensions``) names, if it names one."""
    if not payload:
        return None
    if DOCUMENT_ID in payload:
        return DocumentRequest(trusted_documents.hash_of_document_id(payload[DOCUMENT_ID]))
    persisted = payload.get("persistedQuery")
    if isinstance(persisted, Mapping):
        return DocumentRequest(trusted_documents.valid_hash(persisted.get("sha256Hash")))
    extensions = payload.get("extensions")
    return requested_document(extensions) if isinstance(extensions, Mapping) else None


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    partner_id: int | None


class TrustedDocuments:
    """Parsed registered documents by hash, least recently used first out; used from the event loop only."""

    def __init__(self, *, size: int, max_tokens: int, threads: CapacityLimiter) -> None:
        self._entries: LruCache[str, _Entry] = LruCache(size)
        self._max_tokens = max_tokens
        self._threads = threads

    async def find(
        self, request: DocumentRequest, principal: Principal | None, runtime: Runtime
    ) -> DocumentNode | None:
        """The document if the caller may run it; None for an unknown id and another partner's alike."""
        if request.sha256 is None:
            return None
        caller = principal.partner_id if principal is not None and principal.role is Role.PARTNER else None
        entry = self._entries.get(request.sha256)
        if entry is not None and entry.partner_id in (None, caller):
            return entry.document
        stored = await run_in_threadpool(_load, runtime, request.sha256)
        if stored is None:
            return None
        if entry is None:
            work = partial(parse, stored.text, max_tokens=self._max_tokens)
            entry = _Entry(await to_thread.run_sync(work, limiter=self._threads), stored.partner_id)
        entry.partner_id = stored.partner_id
        self._entries.put(request.sha256, entry)
        return entry.document if entry.partner_id in (None, caller) else None


def _load(runtime: Runtime, sha256: str) -> StoredDocument | None:
    with runtime.sessions() as session:
        return trusted_documents.find_document(session, sha256)
