"""Deleting stored segment sketches that a change in the caller's transaction makes wrong.

A stored sketch (``segment_sketches``) holds hashes of its segment's countable members, so it is
data about those people and must never count anyone who has left, withdrawn, been restricted or
been erased. Every writer that can change a segment's countable members calls one of these in
its own transaction: the row is *deleted*, not flagged, so an erased person's hash is gone when
the erasure commits, and the next reader rebuilds the sketch (``server.analytics.sketches``).

Storage layer, so that identity, consent, restriction, erasure and segments can all call it
without importing analytics. Each call takes ``hold_off_sketch_builds`` first (see there for why).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import orjson
from sqlalchemy import bindparam, delete, text
from sqlalchemy.orm import Session

from server.storage.locks import hold_off_sketch_builds
from server.storage.tables import SegmentSketchRow

__all__ = ["drop_segment_sketches", "drop_sketches_of_subjects"]


def drop_segment_sketches(session: Session, segment_ids: Collection[int]) -> int:
    """Delete the sketches of ``segment_ids`` (whose members just changed); returns the rows deleted."""
    if not segment_ids:
        return 0
    hold_off_sketch_builds(session)
    deleted = session.execute(
        delete(SegmentSketchRow)
        .where(SegmentSketchRow.segment_id.in_(sorted({int(s) for s in segment_ids})))
        .returning(SegmentSketchRow.segment_id)
    )
    return len(deleted.all())


def drop_sketches_of_subjects(session: Session, subject_ids: Iterable[int]) -> int:
    """Delete the sketch of every segment in which one of ``subject_ids`` has an open stay (whose
    countable members change with the subject's consent, restriction, merge, split or erasure).

    One statement however many subjects: the ids go as one parameter (PostgreSQL: a packed
    ``bigint[]``; SQLite: a JSON array read by ``json_each``), so a consent import of a hundred
    thousand people neither loops nor passes SQLite's limit on placeholders."""
    ids = sorted({int(s) for s in subject_ids})
    if not ids:
        return 0
    hold_off_sketch_builds(session)
    if session.get_bind().dialect.name == "postgresql":
        among, packed = "= ANY(string_to_array(:ids, ',')::bigint[])", ",".join(map(str, ids))
    else:
        among, packed = "IN (SELECT value FROM json_each(:ids))", orjson.dumps(ids).decode()
    statement = text(
        "DELETE FROM segment_sketches WHERE segment_id IN (SELECT m.segment_id FROM segment_memberships m "
        f"WHERE m.exited_at IS NULL AND m.subject_id {among}) RETURNING segment_id"
    ).bindparams(bindparam("ids"))
    return len(session.execute(statement, {"ids": packed}).all())
