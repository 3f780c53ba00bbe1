"""Reading, searching and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from privacy.audit import AuditEntry, ChainVerdict, DetailValue, verify_chain
from privacy.identifiers import normalize
from privacy.keyring import Keyring
from server.audit.search import MAX_PAGE, AuditFilters, AuditPage, PageBounds, check_search, search_entries
from server.audit.subject_targets import targets_of
from server.consent.requests import RawIdentifier
from server.runtime import UnitOfWork
from server.storage.audit_store import StoredEntry, iter_entries, read_head

__all__ = ["MAX_PAGE", "page", "search", "verify"]

ANY_ENTRY = AuditFilters()
FIRST_PAGE = PageBounds()


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


def search(
    unit: UnitOfWork,
    *,
    subject: RawIdentifier | None = None,
    filters: AuditFilters = ANY_ENTRY,
    bounds: PageBounds = FIRST_PAGE,
) -> AuditPage:
    """One page of the entries about the person behind ``subject`` (if given) that match ``filters``.

    An identifier that reaches nobody gives an empty page, the answer of a person with no entries.
    The search is audited with the shape of its filters only: never the identifier, nor a target
    or action name the caller typed (either could be personal data typed in the wrong box).
    Raises ``AuditSearchError`` or ``InvalidIdentifier`` before anything is read.
    """
    check_search(filters, bounds)
    narrowed = filters
    if subject is not None:
        normalized = normalize(subject.kind, subject.value, partner_id=subject.partner_id, rules=unit.kit.rules)
        reached = targets_of(unit.session, normalized, unit.kit)
        if filters.targets is not None:
            reached = sorted(set(reached) & set(filters.targets))
        narrowed = AuditFilters(targets=reached, actions=filters.actions, since=filters.since, until=filters.until)
    found = search_entries(unit.session, narrowed, bounds)
    unit.audit("audit.search", details=_described(subject, filters, bounds, len(found.entries)))
    return found


def _described(
    subject: RawIdentifier | None, filters: AuditFilters, bounds: PageBounds, count: int
) -> dict[str, DetailValue]:
    return {
        "subject_kind": None if subject is None else subject.kind.value,
        "targets": None if filters.targets is None else len(filters.targets),
        "actions": None if filters.actions is None else len(filters.actions),
        "since": None if filters.since is None else filters.since.isoformat(),
        "until": None if filters.until is None else filters.until.isoformat(),
        "first": bounds.first,
        "after": bounds.after,
        "last": bounds.last,
        "before": bounds.before,
        "count": count,
    }
