"""A keyset-paginated search of the audit log by target, action and time.

Pages are windows of sequence numbers: a position is a seq, never an offset, so a page stays
right while entries are appended, and every query is a range scan of the primary key narrowed by
the ``target`` and ``action`` indexes. The filters are applied afresh on every page: a position
taken from one search and handed to another only says where to start, it carries no entry of the
first search with it.

Time is ``since <= at < until``. The log's ``at`` has no index of its own (its order follows seq,
but a clock step back would break a seq bound derived from it), so a search by time alone scans
the keyed range: fine for an auditor's query, not a path for bulk reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from privacy.audit import AuditEntry
from server.storage.audit_store import read_entries
from server.storage.tables import AuditEntryRow

__all__ = ["AuditFilters", "AuditPage", "AuditSearchError", "PageBounds", "search_entries"]

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_ACTIONS = 100
MAX_TARGETS = 10_000


class AuditSearchError(ValueError):
    """A search refused before it ran; ``message`` names the rule, never the value sent."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What an entry must match; None means any. An empty ``targets`` matches nothing: a person
    the search reaches no subject or request of has no entries."""

    targets: Sequence[str] | None = None
    actions: Sequence[str] | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class PageBounds:
    """Relay's arguments, positions as sequence numbers: ``first`` after ``after``, or ``last``
    before ``before``; neither count means the first ``DEFAULT_PAGE``."""

    first: int | None = None
    after: int | None = None
    last: int | None = None
    before: int | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries oldest first. ``start_seq``/``end_seq`` are the positions the page covers (an
    entry that no longer decodes is left out, as ``verify`` names it, but still moves the page)."""

    entries: list[AuditEntry]
    has_next_page: bool
    has_previous_page: bool
    start_seq: int | None
    end_seq: int | None


def check_search(filters: AuditFilters, bounds: PageBounds) -> None:
    """Every refusal a search can meet, before it touches the database."""
    if bounds.first is not None and bounds.last is not None:
        raise AuditSearchError("FIRST_AND_LAST", "give first or last, not both", field="last")
    for name, count in (("first", bounds.first), ("last", bounds.last)):
        if count is not None and not 1 <= count <= MAX_PAGE:
            raise AuditSearchError("PAGE_SIZE", f"{name} must be between 1 and {MAX_PAGE}", field=name)
    for name, moment in (("since", filters.since), ("until", filters.until)):
        if moment is not None and moment.utcoffset() is None:
            raise AuditSearchError("TIME_ZONE_REQUIRED", f"{name} must carry a UTC offset", field=name)
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise AuditSearchError("TIME_RANGE", "since must not be later than until", field="since")
    if filters.actions is not None and len(filters.actions) > MAX_ACTIONS:
        raise AuditSearchError("TOO_MANY_ACTIONS", f"at most {MAX_ACTIONS} actions per search", field="actions")
    if filters.targets is not None and len(filters.targets) > MAX_TARGETS:
        raise AuditSearchError("TOO_MANY_TARGETS", f"at most {MAX_TARGETS} targets per search", field="targets")


def search_entries(session: Session, filters: AuditFilters, bounds: PageBounds) -> AuditPage:
    """One page of the entries matching ``filters``; whether more match on either side of it."""
    check_search(filters, bounds)
    matching = _conditions(filters)
    window = [*matching]
    if bounds.after is not None:
        window.append(AuditEntryRow.seq > bounds.after)
    if bounds.before is not None:
        window.append(AuditEntryRow.seq < bounds.before)
    backward = bounds.last is not None
    size = bounds.last if bounds.last is not None else (bounds.first or DEFAULT_PAGE)
    order = AuditEntryRow.seq.desc() if backward else AuditEntryRow.seq
    stored = read_entries(session, select(AuditEntryRow).where(*window).order_by(order).limit(size + 1))
    more_in_window = len(stored) > size
    stored = sorted(stored[:size], key=lambda entry: entry.seq)
    beyond_before = bounds.before is not None and _any(session, matching, AuditEntryRow.seq >= bounds.before)
    beyond_after = bounds.after is not None and _any(session, matching, AuditEntryRow.seq <= bounds.after)
    return AuditPage(
        entries=[entry for entry in stored if isinstance(entry, AuditEntry)],
        has_next_page=beyond_before or (more_in_window and not backward),
        has_previous_page=beyond_after or (more_in_window and backward),
        start_seq=stored[0].seq if stored else None,
        end_seq=stored[-1].seq if stored else None,
    )


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.targets is not None:
        conditions.append(AuditEntryRow.target.in_(sorted(set(filters.targets))))
    if filters.actions is not None:
        conditions.append(AuditEntryRow.action.in_(sorted(set(filters.actions))))
    if filters.since is not None:
        conditions.append(AuditEntryRow.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntryRow.at < filters.until)
    return conditions


def _any(session: Session, matching: list[ColumnElement[bool]], position: ColumnElement[bool]) -> bool:
    found: Any = session.scalar(select(exists().where(*matching, position)))
    return bool(found)
