"""Filing, verifying, rejecting and listing data-subject requests (the compliance team's desk).

A request is filed by an identifier the person gave (email, phone, customer or device id); it is
normalized and kept only as its keyed hash under the current identifier key, the same form the
suppression list keeps, so the request table holds nothing an identifier could be read back from.
Every step is audited against ``request:<id>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.identifiers import normalize
from server.consent.requests import RawIdentifier
from server.consent.service import require_partner
from server.requests.lifecycle import (
    OPEN,
    RejectionReason,
    RequestError,
    RequestErrorCode,
    RequestKind,
    RequestStatus,
    check_label,
    check_move,
    due_at,
)
from server.runtime import UnitOfWork
from server.storage.tables import SubjectRequestRow

__all__ = [
    "Listing",
    "RequestView",
    "file_request",
    "find_request",
    "list_requests",
    "locked_request",
    "reject_request",
    "target_of",
    "verify_request",
    "view_of",
]

Listing = Literal["open", "overdue", "all"]
MAX_LISTED = 1_000


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as the compliance team sees it: no identifier, only its kind."""

    id: int
    kind: RequestKind
    status: RequestStatus
    identifier_kind: str
    received_at: datetime
    due_at: datetime
    overdue: bool
    filed_by: str | None
    verified_at: datetime | None
    verified_by: str | None
    verification_method: str | None
    verification_reference: str | None
    started_at: datetime | None
    closed_at: datetime | None
    rejection_reason: str | None
    outcome: dict[str, Any]


def target_of(request_id: int) -> str:
    return f"request:{request_id}"


def view_of(row: SubjectRequestRow, now: datetime) -> RequestView:
    status = RequestStatus(row.status)
    return RequestView(
        id=row.id,
        kind=RequestKind(row.kind),
        status=status,
        identifier_kind=row.identifier_kind,
        received_at=row.received_at,
        due_at=row.due_at,
        overdue=status in OPEN and row.due_at < now,
        filed_by=row.filed_by,
        verified_at=row.verified_at,
        verified_by=row.verified_by,
        verification_method=row.verification_method,
        verification_reference=row.verification_reference,
        started_at=row.started_at,
        closed_at=row.closed_at,
        rejection_reason=row.rejection_reason,
        outcome=dict(row.outcome or {}),
    )


def file_request(unit: UnitOfWork, *, kind: RequestKind, identifier: RawIdentifier) -> RequestView:
    """An invalid identifier is refused (``InvalidIdentifier``) before anything is written."""
    require_partner(unit.session, identifier.partner_id)
    normalized = normalize(identifier.kind, identifier.value, partner_id=identifier.partner_id, rules=unit.kit.rules)
    pseudonym = unit.kit.pseudonymizer.pseudonym(normalized)
    now = unit.clock()
    row = SubjectRequestRow(
        kind=kind.value,
        status=RequestStatus.RECEIVED.value,
        identifier_kind=normalized.kind.value,
        identifier_key_version=pseudonym.key_version,
        identifier_pseudonym=pseudonym.digest,
        received_at=now,
        due_at=due_at(now),
        filed_by=unit.actor.key_id,
    )
    unit.session.add(row)
    unit.session.flush()
    unit.audit(
        "request.filed",
        target=target_of(row.id),
        details={"kind": kind.value, "identifier_kind": normalized.kind.value},
    )
    return view_of(row, now)


def locked_request(unit: UnitOfWork, request_id: int) -> SubjectRequestRow:
    """The row, locked until the unit of work ends (PostgreSQL; SQLite's write lock is already held)."""
    row = unit.session.scalar(select(SubjectRequestRow).where(SubjectRequestRow.id == request_id).with_for_update())
    if row is None:
        raise RequestError(RequestErrorCode.UNKNOWN_REQUEST)
    return row


def verify_request(unit: UnitOfWork, request_id: int, *, method: str, reference: str) -> RequestView:
    """Records who verified the requester's identity (the acting key) and how, by reference only."""
    method, reference = check_label("method", method), check_label("reference", reference)
    row = locked_request(unit, request_id)
    check_move(RequestStatus(row.status), RequestStatus.VERIFIED)
    now = unit.clock()
    row.status = RequestStatus.VERIFIED.value
    row.verified_at, row.verified_by = now, unit.actor.key_id
    row.verification_method, row.verification_reference = method, reference
    unit.session.flush()
    unit.audit("request.verified", target=target_of(row.id), details={"kind": row.kind, "method": method})
    return view_of(row, now)


def reject_request(unit: UnitOfWork, request_id: int, reason: RejectionReason) -> RequestView:
    row = locked_request(unit, request_id)
    check_move(RequestStatus(row.status), RequestStatus.REJECTED)
    now = unit.clock()
    row.status, row.rejection_reason, row.closed_at = RequestStatus.REJECTED.value, reason.value, now
    unit.session.flush()
    unit.audit("request.rejected", target=target_of(row.id), details={"kind": row.kind, "reason": reason.value})
    return view_of(row, now)


def find_request(session: Session, request_id: int, now: datetime) -> RequestView:
    row = session.get(SubjectRequestRow, request_id)
    if row is None:
        raise RequestError(RequestErrorCode.UNKNOWN_REQUEST)
    return view_of(row, now)


def list_requests(
    session: Session, *, now: datetime, which: Listing = "open", kinds: Sequence[RequestKind] = (), limit: int = 100
) -> list[RequestView]:
    """Oldest due first: the order the team should work in."""
    query = select(SubjectRequestRow).order_by(SubjectRequestRow.due_at, SubjectRequestRow.id)
    if which != "all":
        query = query.where(SubjectRequestRow.status.in_([status.value for status in OPEN]))
    if which == "overdue":
        query = query.where(SubjectRequestRow.due_at < now)
    if kinds:
        query = query.where(SubjectRequestRow.kind.in_([kind.value for kind in kinds]))
    rows = session.scalars(query.limit(max(1, min(limit, MAX_LISTED))))
    return [view_of(row, now) for row in rows]
