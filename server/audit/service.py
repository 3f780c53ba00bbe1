"""Reading and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from privacy.audit import AuditEntry, ChainVerdict, verify_chain
from privacy.keyring import Keyring
from server.storage.audit_store import iter_entries, read_head

MAX_PAGE = 1_000


def verify(session: Session, keyring: Keyring, *, on_entry: Callable[[], None] | None = None) -> ChainVerdict:
    """The head is read first and only entries up to it are checked: under READ COMMITTED an append
    committed while we read would otherwise look like a truncated log."""
    head = read_head(session)
    entries = iter_entries(session, until_seq=head[0])
    if on_entry is not None:
        entries = _announcing(entries, on_entry)
    return verify_chain(entries, keyring, head=head)


def _announcing(entries: Iterator[AuditEntry], on_entry: Callable[[], None]) -> Iterator[AuditEntry]:
    for entry in entries:
        on_entry()
        yield entry


def page(session: Session, *, after_seq: int, first: int) -> list[AuditEntry]:
    return list(iter_entries(session, after_seq=max(after_seq, 0), limit=max(1, min(first, MAX_PAGE))))
