"""Reading and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from privacy.audit import AuditEntry, ChainVerdict, verify_chain
from privacy.keyring import Keyring
from server.storage.audit_store import StoredEntry, iter_entries, read_head

MAX_PAGE = 1_000


def verify(session: Session, keyring: Keyring, *, on_entry: Callable[[], None] | None = None) -> ChainVerdict:
    """The head is read first and every entry is checked, those past it included: appends committed
    while we read verify like the rest, and a row forged past the head is named."""
    head = read_head(session)
    entries = iter_entries(session)
    if on_entry is not None:
        entries = _announcing(entries, on_entry)
    return verify_chain(entries, keyring, head=head)


def _announcing(entries: Iterator[StoredEntry], on_entry: Callable[[], None]) -> Iterator[StoredEntry]:
    for entry in entries:
        on_entry()
        yield entry


def page(session: Session, *, after_seq: int, first: int) -> list[AuditEntry]:
    """Entries that no longer decode are left out here; ``verify`` names them."""
    stored = iter_entries(session, after_seq=max(after_seq, 0), limit=max(1, min(first, MAX_PAGE)))
    return [entry for entry in stored if isinstance(entry, AuditEntry)]
