"""Marks on subjects whose derived data is stale, and how the builders of that data drain them.

Features, interest scores and segment memberships are computed from a subject's events and
identities. A merge moves those from one subject to another and a split moves them back, so
the derived data of both sides is wrong afterwards; recomputing it inside the ingest batch would
make every batch pay for a rebuild. Instead both sides are marked in the transaction that moves
the rows, and a builder rebuilds later: for a subject merged away, that means dropping its data.

One row per subject, however often it is marked: marking again sets ``marked_at`` to the new
time and keeps the newest reason, so a builder taking the oldest marks first serves the longest
waiting. ``clear_marks`` deletes a mark only while its ``marked_at`` is still the one
``take_marks`` returned, so a subject marked again during its rebuild stays marked.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from server.storage.stale_sketches import drop_sketches_of_subjects
from server.storage.tables import DerivedRebuildRow
from server.storage.upsert import table_of, upsert


class RebuildReason(enum.StrEnum):
    MERGE = "merge"
    SPLIT = "split"
    EVENTS = "events"
    """New events were folded into the subject's state."""
    CONSENT = "consent"
    """A consent statement came into force (a purpose, or sharing with a partner)."""
    RESTRICTION = "restriction"
    """A processing restriction was applied or lifted."""


@dataclass(frozen=True, slots=True)
class RebuildMark:
    subject_id: int
    reason: RebuildReason
    marked_at: datetime


SKETCH_CHANGES: frozenset[RebuildReason] = frozenset(
    {RebuildReason.MERGE, RebuildReason.SPLIT, RebuildReason.CONSENT, RebuildReason.RESTRICTION}
)
"""Reasons that change who may be counted at once, before any re-evaluation: the segment sketches
of the subjects' open stays are deleted with the mark. New events change nothing until a segment is
evaluated, and the evaluation's own writes drop what changed (``server.segments.memberships``)."""


def mark_for_rebuild(session: Session, subject_ids: Iterable[int], *, reason: RebuildReason, now: datetime) -> None:
    """One statement for all of them: each subject once, in id order, so that concurrent batches
    take these row locks in the same order.

    For a consent, restriction, merge or split, also deletes the stored sketch of every segment the
    subjects have an open stay in, in this same transaction: an aggregate counts only people who
    may be counted now (``server.analytics.population``), so a sketch built before the change would
    go on counting someone the exact count already leaves out."""
    ids = sorted(set(subject_ids))
    if reason in SKETCH_CHANGES:
        drop_sketches_of_subjects(session, ids)
    upsert(
        session,
        DerivedRebuildRow,
        [{"subject_id": subject_id, "reason": reason.value, "marked_at": now} for subject_id in ids],
        keys=["subject_id"],
        update=["reason", "marked_at"],
    )


def take_marks(session: Session, *, limit: int) -> list[RebuildMark]:
    """Up to ``limit`` marks, oldest first; they stay until ``clear_marks`` is given them back."""
    rows = session.execute(
        select(DerivedRebuildRow.subject_id, DerivedRebuildRow.reason, DerivedRebuildRow.marked_at)
        .order_by(DerivedRebuildRow.marked_at, DerivedRebuildRow.subject_id)
        .limit(limit)
    )
    return [RebuildMark(row.subject_id, RebuildReason(row.reason), row.marked_at) for row in rows]


def clear_marks(session: Session, marks: Sequence[RebuildMark]) -> None:
    """Delete exactly the marks taken; a subject marked again since (another ``marked_at``) keeps its mark."""
    if not marks:
        return
    table = table_of(DerivedRebuildRow)
    session.execute(
        delete(table).where(table.c.subject_id == bindparam("s"), table.c.marked_at == bindparam("t")),
        [{"s": mark.subject_id, "t": mark.marked_at} for mark in marks],
    )
