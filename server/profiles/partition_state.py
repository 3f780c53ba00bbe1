"""Swapping the stored state of one partition of subjects for a newly built one.

Everything stored for the partition goes, whoever it belonged to (a subject who withdrew
``profiling`` consent, one merged away, one whose events were erased), and the new state comes in
its place: the caller's transaction makes the swap all or nothing, so readers see the partition
as it was before or as it is after, never between.
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import delete
from sqlalchemy.orm import Session

from server.profiles.partitions import Partition
from server.profiles.state import ProfileState
from server.profiles.store import STATE_TABLES, write_state

__all__ = ["replace_partition_state"]


def replace_partition_state(session: Session, partition: Partition, state: ProfileState) -> int:
    """Returns the rows written. ``state`` must hold only subjects of ``partition``."""
    frames = (state.daily, state.summary, state.interests)
    strays = sum(frame.filter(~partition.holds(pl.col("subject_id"))).height for frame in frames)
    if strays:
        # Written, they would sit in another partition's range beside (or instead of) its own rows.
        raise ValueError(f"{strays} state rows are outside partition {partition.index + 1} of {partition.count}")
    for model, _schema in STATE_TABLES:
        column = model.__table__.c.subject_id
        session.execute(delete(model).where(column.between(partition.low, partition.high)))
    return write_state(session, state)
