"""Whom an erasure of some subject ids reaches: each id's whole person, every fragment of it.

A merged-away subject (``merged_into`` set) is a fragment of its winner's person: its rows were
re-pointed there. So an erasure of any fragment climbs to the person's active subject first and
then takes every subject ever merged into it (``server.subjects.reach.with_merged``), however
many merges deep. Erasing a loser alone would leave the person's events on the winner.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from server.storage.lookup import select_where_in
from server.subjects.reach import with_merged

__all__ = ["whole_persons"]


def whole_persons(session: Session, subject_ids: Iterable[int]) -> list[int]:
    """Every subject id of the persons ``subject_ids`` belong to (unknown ids kept as given)."""
    reached = set(subject_ids)
    frontier = sorted(reached)
    while frontier:
        rows = select_where_in(
            session, "SELECT merged_into FROM subjects WHERE merged_into IS NOT NULL AND id {in}", frontier
        )
        frontier = sorted({int(row[0]) for row in rows} - reached)
        reached.update(frontier)
    return with_merged(session, reached)
