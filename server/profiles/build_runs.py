"""The record of each batch build (``profile_builds``): begun, advanced per partition, ended.

Plain functions on the caller's session; the build (``server.profiles.build``) owns the
transactions. A run is ``running`` until it ends ``succeeded`` or ``failed``. Its heartbeat is
written with every partition, so a run whose process died (killed, power lost) is told from a
slow one by age: the next build marks a run silent for ``ABANDONED_AFTER`` as failed
(``ABANDONED``) and goes ahead, while a live one refuses it (``BUILD_RUNNING``). A run marked
abandoned that was only slow finds out at its next partition, whose update matches no running
row: that partition is rolled back and the run stops (``RunNotRunning``).

Nothing here holds a subject id or a value: a run keeps counts, codes and cut points. Errors::

    BuildError (code, message)
    ├── BuildRunning        another run is live
    └── InvalidPartitions   a partition count out of range
    RunNotRunning           the run was ended by someone else (internal to the build)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.storage.tables import ProfileBuildRow

__all__ = [
    "ABANDONED_AFTER",
    "BuildError",
    "BuildErrorCode",
    "BuildRun",
    "BuildRunning",
    "BuildStatus",
    "CutPoints",
    "InvalidPartitions",
    "RunNotRunning",
    "abandon_stale",
    "begin_run",
    "build_run",
    "build_runs",
    "fail_run",
    "finish_run",
    "record_partition",
]

ABANDONED_AFTER: Final = timedelta(minutes=5)
"""A partition takes seconds (``server.profiles.partitions.EVENTS_PER_PARTITION``); a run silent
this long has lost its process."""
MAX_MESSAGE: Final = 512  # the column's length


class BuildStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BuildErrorCode(enum.StrEnum):
    BUILD_RUNNING = "BUILD_RUNNING"
    INVALID_PARTITIONS = "INVALID_PARTITIONS"
    ABANDONED = "ABANDONED"
    """Its process stopped writing heartbeats: found by the next build."""
    INTERRUPTED = "INTERRUPTED"
    """Stopped by the operator (Ctrl-C) or the process shutting down."""
    DISK_FULL = "DISK_FULL"
    NOT_WRITABLE = "NOT_WRITABLE"
    UNREACHABLE = "UNREACHABLE"
    BUILD_FAILED = "BUILD_FAILED"
    """Anything else: the message names the partition and the kind of error, never its text."""


class BuildError(Exception):
    """A build that cannot start; ``message`` is one line an operator can act on, without PII."""

    def __init__(self, code: BuildErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BuildRunning(BuildError):
    def __init__(self, run: BuildRun) -> None:
        super().__init__(
            BuildErrorCode.BUILD_RUNNING,
            f"a profile build is already running (run {run.id}, {run.partitions_done} of {run.partitions} "
            f"partitions done, last heartbeat {run.heartbeat_at.isoformat(timespec='seconds')}); wait for it to end",
        )
        self.run = run


class InvalidPartitions(BuildError):
    def __init__(self, maximum: int) -> None:
        super().__init__(BuildErrorCode.INVALID_PARTITIONS, f"partitions must be between 1 and {maximum:,}")


class RunNotRunning(Exception):
    """The run's record is no longer ``running`` (marked abandoned by a later build)."""


@dataclass(frozen=True, slots=True)
class CutPoints:
    """The value-tier quantiles a run computed (``server.profiles.tiers``); ``high`` and ``low``
    are ``None`` when there was no buyer."""

    high: float | None
    low: float | None
    buyers: int

    def to_json(self) -> dict[str, Any]:
        return {"high": self.high, "low": self.low, "buyers": self.buyers}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> CutPoints:
        def number(key: str) -> float | None:
            value = stored.get(key)
            return None if value is None else float(value)

        return cls(high=number("high"), low=number("low"), buyers=int(stored.get("buyers", 0)))


@dataclass(frozen=True, slots=True)
class BuildRun:
    id: int
    status: BuildStatus
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    as_of: datetime
    partitions: int
    partitions_done: int
    events_read: int
    subjects: int
    rows_written: int
    cut_points: CutPoints | None
    error_code: str | None
    error_message: str | None


def _to_run(row: ProfileBuildRow) -> BuildRun:
    return BuildRun(
        id=row.id,
        status=BuildStatus(row.status),
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
        as_of=row.as_of,
        partitions=row.partitions,
        partitions_done=row.partitions_done,
        events_read=row.events_read,
        subjects=row.subjects,
        rows_written=row.rows_written,
        cut_points=None if row.cut_points is None else CutPoints.from_json(row.cut_points),
        error_code=row.error_code,
        error_message=row.error_message,
    )


def abandon_stale(session: Session, *, now: datetime) -> list[BuildRun]:
    """Mark every running run silent for ``ABANDONED_AFTER`` failed; returns them, as marked.

    Raises ``BuildRunning`` when a live run remains. The caller holds the writers' turn, so no
    other build begins between this check and its own ``begin_run``.
    """
    abandoned: list[BuildRun] = []
    for row in session.scalars(select(ProfileBuildRow).where(ProfileBuildRow.status == BuildStatus.RUNNING.value)):
        if row.heartbeat_at > now - ABANDONED_AFTER:
            raise BuildRunning(_to_run(row))
        row.status = BuildStatus.FAILED.value
        row.finished_at = now
        row.error_code = BuildErrorCode.ABANDONED.value
        row.error_message = (
            f"no heartbeat for {ABANDONED_AFTER.total_seconds() / 60:g} minutes after {row.partitions_done} of "
            f"{row.partitions} partitions: its process stopped; those partitions hold the new state, the rest "
            "their previous one"
        )
        abandoned.append(_to_run(row))
    session.flush()
    return abandoned


def begin_run(session: Session, *, now: datetime, partitions: int, settings: dict[str, Any]) -> BuildRun:
    """A new ``running`` run; call ``abandon_stale`` first, in the same transaction."""
    row = ProfileBuildRow(
        status=BuildStatus.RUNNING.value,
        started_at=now,
        heartbeat_at=now,
        as_of=now,
        partitions=partitions,
        partitions_done=0,
        events_read=0,
        subjects=0,
        rows_written=0,
        settings=settings,
    )
    session.add(row)
    session.flush()
    return _to_run(row)


def record_partition(session: Session, run_id: int, *, now: datetime, events: int, subjects: int, rows: int) -> None:
    """One more partition done, in the partition's own transaction: its state and this count commit together."""
    table = ProfileBuildRow
    updated = session.execute(
        update(table)
        .where(table.id == run_id, table.status == BuildStatus.RUNNING.value)
        .values(
            partitions_done=table.partitions_done + 1,
            events_read=table.events_read + events,
            subjects=table.subjects + subjects,
            rows_written=table.rows_written + rows,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(updated, "rowcount", 0) != 1:
        raise RunNotRunning(run_id)


def finish_run(session: Session, run_id: int, *, now: datetime, cut_points: CutPoints) -> BuildRun:
    row = _running(session, run_id)
    row.status = BuildStatus.SUCCEEDED.value
    row.finished_at = row.heartbeat_at = now
    row.cut_points = cut_points.to_json()
    session.flush()
    return _to_run(row)


def fail_run(session: Session, run_id: int, *, now: datetime, code: BuildErrorCode, message: str) -> BuildRun:
    """Ends the run as failed, unless it has already ended (then it is returned as it is)."""
    row = session.get(ProfileBuildRow, run_id)
    if row is None:
        raise RunNotRunning(run_id)
    if row.status == BuildStatus.RUNNING.value:
        row.status = BuildStatus.FAILED.value
        row.finished_at = now
        row.error_code = code.value
        row.error_message = message[:MAX_MESSAGE]
        session.flush()
    return _to_run(row)


def _running(session: Session, run_id: int) -> ProfileBuildRow:
    row = session.get(ProfileBuildRow, run_id)
    if row is None or row.status != BuildStatus.RUNNING.value:
        raise RunNotRunning(run_id)
    return row


def build_run(session: Session, run_id: int) -> BuildRun | None:
    row = session.get(ProfileBuildRow, run_id)
    return None if row is None else _to_run(row)


def build_runs(session: Session, limit: int) -> list[BuildRun]:
    """The latest ``limit`` runs, newest first."""
    rows = session.scalars(select(ProfileBuildRow).order_by(ProfileBuildRow.id.desc()).limit(max(1, limit)))
    return [_to_run(row) for row in rows]
