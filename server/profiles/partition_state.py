"""Swapping the stored state of one partition of subjects for a newly built one.

Everything stored for the partition that the new state does not hold goes, whoever it belonged to
(a subject who withdrew ``profiling`` consent, one merged away, one whose events were erased) but
a subject under a processing restriction, whose state is neither read nor written here, and
the new state comes in its place: the caller's transaction makes the swap all or nothing, so
readers see the partition as it was before or as it is after, never between.

Only the difference is written. A build mostly finds what ingestion already folded in (a repair
changes a few subjects; a new weight changes interests, never the daily rollups, the largest
table), and deleting and inserting every row cost most of a build. So the partition's stored state
is read (in bulk, like its events) and compared row by row on each table's key: rows the new state
lacks or holds differently are deleted, rows it holds differently or anew are inserted. Interest
scores count as equal within ``SCORE_TOLERANCE`` (relative), the rounding by which a fold and a
build differ; everything else must be equal exactly.
"""

from __future__ import annotations

from typing import Final

import polars as pl
from sqlalchemy.orm import Session

from server.profiles.partitions import Partition
from server.profiles.state import ProfileState
from server.profiles.store import STATE_KEYS, STATE_TABLES
from server.storage.arrow_reads import FrameReader
from server.storage.bulk import bulk_delete, bulk_insert
from server.storage.restrictions import unrestricted

__all__ = ["SCORE_TOLERANCE", "replace_partition_state", "stored_partition_state"]

SCORE_TOLERANCE: Final = 1e-9


def stored_partition_state(reader: FrameReader, partition: Partition) -> ProfileState:
    """What is stored now for the partition's unrestricted subjects, read in bulk.

    A restricted subject's rows are left out, like its events (``server.profiles.event_reader``):
    the swap neither deletes nor rewrites what it does not see, so that state stays frozen.
    """
    return ProfileState(
        *(
            reader.frame(
                f"SELECT {', '.join(schema)} FROM {model.__tablename__} WHERE {partition.predicate()} "
                f"AND {unrestricted(f'{model.__tablename__}.subject_id')}",
                schema,
            )
            for model, schema in STATE_TABLES
        )
    )


def replace_partition_state(session: Session, partition: Partition, state: ProfileState, stored: ProfileState) -> int:
    """Make the partition's stored state (``stored``, as read) equal to ``state``; returns the rows
    written. ``state`` must hold only subjects of ``partition``."""
    frames = (state.daily, state.summary, state.interests)
    strays = sum(frame.filter(~partition.holds(pl.col("subject_id"))).height for frame in frames)
    if strays:
        # Written, they would sit in another partition's range beside (or instead of) its own rows.
        raise ValueError(f"{strays} state rows are outside partition {partition.index + 1} of {partition.count}")
    written = 0
    before = (stored.daily, stored.summary, stored.interests)
    for (model, schema), new, old in zip(STATE_TABLES, frames, before, strict=True):
        keys = STATE_KEYS[model.__tablename__]
        unchanged = _unchanged_keys(new, old, keys, [name for name in schema if name not in keys])
        bulk_delete(session, model, old.select(keys).join(unchanged, on=keys, how="anti"))
        changed = new.join(unchanged, on=keys, how="anti")
        bulk_insert(session, model, changed, ignore_conflicts=False)
        written += changed.height
    return written


def _unchanged_keys(new: pl.DataFrame, old: pl.DataFrame, keys: list[str], values: list[str]) -> pl.DataFrame:
    """Keys whose row is the same in both (floats within ``SCORE_TOLERANCE``)."""
    both = new.join(old, on=keys, how="inner", suffix="_stored")
    same = pl.lit(value=True)
    for name in values:
        ours, theirs = pl.col(name), pl.col(f"{name}_stored")
        if new.schema[name] == pl.Float64:
            close = (ours - theirs).abs() <= SCORE_TOLERANCE * theirs.abs()
            same = same & (close | (ours.is_null() & theirs.is_null()))
        else:
            same = same & ours.eq_missing(theirs)
    return both.filter(same).select(keys)
