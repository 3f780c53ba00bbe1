"""How each segment's evaluation stands, for the marketer's list and for operators.

Nothing may stop updating silently (peers' users report cohorts "stuck calculating" for days), so
every segment shows:

- ``lag``: how far behind its members may be. A rule that changes with time alone is as fresh as
  its last full evaluation (the sweep bounds it): ``now - last_evaluated_at``. Any other rule is
  kept exact by the real-time path, so it lags by the oldest change still waiting to be evaluated
  (the oldest ``derived_rebuilds`` mark; zero when none waits). ``None`` before a first evaluation.
- ``stuck``: an evaluation started more than ``STUCK_AFTER`` ago and has not ended (a batch
  over the largest populations takes minutes; a process killed mid-run leaves its mark until the
  next run).
- its status, staleness, member count, and the last error's code and time (never its text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.segments.rule_json import RuleJsonError, from_json
from server.segments.timing import time_dependent
from server.storage.tables import DerivedRebuildRow, SegmentRow

__all__ = ["STUCK_AFTER", "SegmentHealth", "segment_health"]

STUCK_AFTER: Final = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class SegmentHealth:
    segment_id: int
    name: str
    status: str
    stale: bool
    member_count: int
    last_evaluated_at: datetime | None
    last_duration_ms: int | None
    lag: timedelta | None
    evaluating_since: datetime | None
    stuck: bool
    last_error_code: str | None
    last_error_at: datetime | None


def _ages(row: SegmentRow) -> bool:
    try:
        return row.time_dependent or time_dependent(from_json(row.rule))
    except RuleJsonError:
        return True


def segment_health(session: Session, *, now: datetime, segment_ids: list[int] | None = None) -> list[SegmentHealth]:
    """Every segment's health (or those of ``segment_ids``), by id."""
    query = select(SegmentRow).order_by(SegmentRow.id)
    if segment_ids is not None:
        query = query.where(SegmentRow.id.in_(segment_ids))
    oldest_mark = session.scalar(select(func.min(DerivedRebuildRow.marked_at)))
    waiting = timedelta(0) if oldest_mark is None else max(timedelta(0), now - oldest_mark)
    found = []
    for row in session.scalars(query):
        lag = None
        if row.last_evaluated_at is not None:
            lag = now - row.last_evaluated_at if _ages(row) else waiting
        started = row.evaluation_started_at
        found.append(
            SegmentHealth(
                segment_id=row.id,
                name=row.name,
                status=row.status,
                stale=row.stale,
                member_count=row.member_count,
                last_evaluated_at=row.last_evaluated_at,
                last_duration_ms=row.last_duration_ms,
                lag=lag,
                evaluating_since=started,
                stuck=started is not None and now - started > STUCK_AFTER,
                last_error_code=row.last_error_code,
                last_error_at=row.last_error_at,
            )
        )
    return found
