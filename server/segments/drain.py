"""The real-time path: evaluate the subjects whose data changed, right after the change commits.

Every writer that changes what a rule reads about a subject (an ingest batch's fold, a consent
change, a restriction or its lifting, a merge or a split) marks the subject in ``derived_rebuilds``
in its own transaction (``server.identity.rebuilds``), so no change is lost to a crash between
the commit and the evaluation. ``drain_marks`` takes the oldest marks, evaluates those subjects in
one unit of work (``evaluate_subjects``) and clears exactly the marks it took: a subject marked
again meanwhile keeps its mark and is evaluated again.

Several server processes may drain at once on PostgreSQL: a drain that cannot take the segment
writers' turn at once (``try_segment_evaluation_turn``) leaves the marks to whoever holds it.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from server.auth.principal import SYSTEM_ACTOR
from server.identity.rebuilds import clear_marks, take_marks
from server.runtime import Runtime
from server.segments.evaluate import evaluate_subjects
from server.segments.scope import MAX_LISTED
from server.storage.locks import try_segment_evaluation_turn
from server.storage.tables import DerivedRebuildRow
from server.taxonomy.taxonomy import taxonomy_for

__all__ = ["MARKS_PER_UNIT", "drain_marks", "marks_waiting"]

MARKS_PER_UNIT: Final = MAX_LISTED


def marks_waiting(runtime: Runtime) -> bool:
    """A read, without the write turn: whether a drain has anything to do."""
    with runtime.sessions() as session:
        return session.scalar(select(DerivedRebuildRow.subject_id).limit(1)) is not None


def drain_marks(runtime: Runtime, *, limit: int = MARKS_PER_UNIT, rounds: int | None = None) -> int:
    """Evaluate marked subjects until none is left (or ``rounds`` units of work); returns how many."""
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    drained = 0
    done = 0
    while (rounds is None or done < rounds) and marks_waiting(runtime):
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            if not try_segment_evaluation_turn(unit.session):
                return drained
            marks = take_marks(unit.session, limit=limit)
            evaluate_subjects(unit, [mark.subject_id for mark in marks], taxonomy=taxonomy)
            clear_marks(unit.session, marks)
        drained += len(marks)
        done += 1
        if len(marks) < limit:
            break
    return drained
