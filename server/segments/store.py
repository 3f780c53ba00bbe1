"""Segments and grants as the evaluator reads them, and the status it records on each segment.

Status (``SegmentRow``): ``pending`` until a full evaluation, ``ready`` after one, ``failed`` when
the last evaluation of the segment failed (its last good members stay, ``stale``). A segment that
depends on a stale one is stale too. ``last_error_code`` is a code, never an exception's text.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.storage.tables import SegmentGrantRow, SegmentMembershipRow, SegmentRow

__all__ = [
    "ActiveGrant",
    "SegmentStatus",
    "StoredSegment",
    "active_grants",
    "add_member_counts",
    "clear_started",
    "mark_started",
    "record_evaluated",
    "record_failed",
    "recount_members",
    "stored_segments",
]


class SegmentStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StoredSegment:
    id: int
    name: str
    rule: Any
    time_dependent: bool
    status: SegmentStatus


@dataclass(frozen=True, slots=True)
class ActiveGrant:
    id: int
    segment_id: int
    partner_id: int
    purpose: str


def stored_segments(session: Session) -> list[StoredSegment]:
    rows = session.execute(
        select(SegmentRow.id, SegmentRow.name, SegmentRow.rule, SegmentRow.time_dependent, SegmentRow.status).order_by(
            SegmentRow.id
        )
    )
    return [
        StoredSegment(row.id, row.name, row.rule, bool(row.time_dependent), SegmentStatus(row.status)) for row in rows
    ]


def active_grants(session: Session, *, grant_id: int | None = None) -> list[ActiveGrant]:
    """Grants not revoked (``grant_id``: that one only, if active)."""
    query = select(SegmentGrantRow.id, SegmentGrantRow.segment_id, SegmentGrantRow.partner_id, SegmentGrantRow.purpose)
    query = query.where(SegmentGrantRow.revoked_at.is_(None)).order_by(SegmentGrantRow.id)
    if grant_id is not None:
        query = query.where(SegmentGrantRow.id == grant_id)
    return [ActiveGrant(row.id, row.segment_id, row.partner_id, row.purpose) for row in session.execute(query)]


def mark_started(session: Session, segment_ids: Collection[int], *, now: datetime) -> None:
    if segment_ids:
        session.execute(
            update(SegmentRow).where(SegmentRow.id.in_(list(segment_ids))).values(evaluation_started_at=now)
        )


def clear_started(session: Session, segment_ids: Collection[int]) -> None:
    if segment_ids:
        session.execute(
            update(SegmentRow).where(SegmentRow.id.in_(list(segment_ids))).values(evaluation_started_at=None)
        )


def record_evaluated(
    session: Session,
    outcomes: Mapping[int, str | None],
    *,
    stale: Collection[int],
    as_of: datetime,
    duration_ms: int,
    now: datetime,
) -> None:
    """A full evaluation ended: each segment of ``outcomes`` ready (None) or failed (its code)."""
    for segment_id, code in outcomes.items():
        values: dict[str, Any] = {
            "evaluation_started_at": None,
            "last_duration_ms": duration_ms,
            "stale": code is not None or segment_id in stale,
        }
        if code is None:
            values |= {"status": SegmentStatus.READY.value, "last_evaluated_at": as_of}
        else:
            values |= {"status": SegmentStatus.FAILED.value, "last_error_code": code, "last_error_at": now}
        session.execute(update(SegmentRow).where(SegmentRow.id == segment_id).values(values))


def record_failed(session: Session, failures: Mapping[int, str], *, stale: Collection[int], now: datetime) -> None:
    """A real-time pass failed for ``failures`` (id: code); ``stale``: their dependents."""
    for segment_id, code in failures.items():
        session.execute(
            update(SegmentRow)
            .where(SegmentRow.id == segment_id)
            .values(status=SegmentStatus.FAILED.value, stale=True, last_error_code=code, last_error_at=now)
        )
    if stale:
        session.execute(update(SegmentRow).where(SegmentRow.id.in_(list(stale))).values(stale=True))


def add_member_counts(session: Session, deltas: Mapping[int, int]) -> None:
    for segment_id, delta in sorted(deltas.items()):
        if delta:
            session.execute(
                update(SegmentRow)
                .where(SegmentRow.id == segment_id)
                .values(member_count=SegmentRow.member_count + delta)
            )


def recount_members(session: Session, segment_ids: Collection[int]) -> None:
    """``member_count`` from the open stays, for a full evaluation (real time adds its deltas)."""
    if not segment_ids:
        return
    counted = (
        select(func.count())
        .where(SegmentMembershipRow.segment_id == SegmentRow.id, SegmentMembershipRow.exited_at.is_(None))
        .scalar_subquery()
    )
    session.execute(update(SegmentRow).where(SegmentRow.id.in_(list(segment_ids))).values(member_count=counted))
