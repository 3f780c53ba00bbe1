"""The stored theta sketch of each segment's countable members, rebuilt when it is missing.

A sketch row is valid exactly while it exists: every change that can alter a segment's countable
members deletes the row in its own transaction (``server.storage.stale_sketches``: evaluations,
consent, restriction, merge, split, erasure, a new rule), so ``sketch_of`` never has to ask whether
a row is fresh. A missing row is rebuilt here from ``population.countable_members`` and stored for
the next question, unless a deleting change is in flight (``try_sketch_build_turn``), in which case
the fresh sketch answers this question and is not kept.

Call it in a writing unit of work: on SQLite the write lock taken at BEGIN is what orders a
rebuild after every change it must see.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.sketches import DEFAULT_LG_K, Sketch, build, deserialize, serialize
from server.analytics.population import countable_members
from server.storage.arrow_reads import SessionReader
from server.storage.locks import try_sketch_build_turn
from server.storage.tables import SegmentSketchRow
from server.storage.upsert import upsert

__all__ = ["rebuild_sketch", "sketch_of"]


def sketch_of(session: Session, segment_id: int, *, now: datetime, lg_k: int = DEFAULT_LG_K) -> Sketch:
    """The segment's sketch as its countable members stand now (a stored row of another ``lg_k``
    counts as missing, and is replaced)."""
    stored = session.execute(
        select(SegmentSketchRow.lg_k, SegmentSketchRow.sketch).where(SegmentSketchRow.segment_id == segment_id)
    ).first()
    if stored is not None and stored.lg_k == lg_k:
        return deserialize(bytes(stored.sketch))
    return rebuild_sketch(session, segment_id, now=now, lg_k=lg_k)


def rebuild_sketch(session: Session, segment_id: int, *, now: datetime, lg_k: int = DEFAULT_LG_K) -> Sketch:
    """Build from the members read now, and store it when no deleting change is in flight."""
    keep = try_sketch_build_turn(session)  # before the read: see ``hold_off_sketch_builds``
    members = countable_members(SessionReader(session), [segment_id])["subject_id"]
    sketch = build(members.to_list(), lg_k=lg_k)
    if keep:
        upsert(
            session,
            SegmentSketchRow,
            [
                {
                    "segment_id": segment_id,
                    "lg_k": lg_k,
                    "members": members.len(),
                    "sketch": serialize(sketch),
                    "built_at": now,
                }
            ],
            keys=["segment_id"],
            update=["lg_k", "members", "sketch", "built_at"],
        )
    return sketch
