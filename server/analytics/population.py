"""Who an aggregate counts: the *countable* members of segments, read at the moment of the question.

Countable: an open stay in the segment, of a subject who consents to ``profiling`` now and is
under no restriction. The consent and restriction conditions are checked here, in the query,
rather than trusted to the stays: a withdrawal or a restriction is written to the consent ledger
at once but reaches the stays only at the next evaluation, and an aggregate must leave the person
out from the very next question (invariant 3). An erased subject has no stays and no consent state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from server.storage.arrow_reads import FrameReader
from server.storage.restrictions import may_profile

__all__ = ["STAY_SCHEMA", "countable_members", "countable_stays", "segment_sizes"]

STAY_SCHEMA: Final = pl.Schema(
    {
        "segment_id": pl.Int64(),
        "subject_id": pl.Int64(),
        "entered_at": pl.Datetime("us", "UTC"),
        "exited_at": pl.Datetime("us", "UTC"),
    }
)
MEMBER_SCHEMA: Final = pl.Schema({"segment_id": pl.Int64(), "subject_id": pl.Int64()})


def segment_sizes(session: Session, segment_ids: Sequence[int]) -> dict[int, int]:
    """Each segment's countable members now (segments with none are 0)."""
    if not segment_ids:
        return {}
    statement = text(
        "SELECT m.segment_id, count(*) FROM segment_memberships m WHERE m.exited_at IS NULL "
        f"AND m.segment_id IN :segments AND {may_profile('m.subject_id')} GROUP BY m.segment_id"
    ).bindparams(bindparam("segments", expanding=True))
    found = {int(row[0]): int(row[1]) for row in session.execute(statement, {"segments": list(segment_ids)})}
    return {segment_id: found.get(segment_id, 0) for segment_id in segment_ids}


def _in_list(segment_ids: Sequence[int]) -> str:
    return ", ".join(str(int(segment_id)) for segment_id in segment_ids)  # ints only: no input text


def countable_members(reader: FrameReader, segment_ids: Sequence[int]) -> pl.DataFrame:
    """(segment_id, subject_id) of every open stay in ``segment_ids`` whose subject is countable now."""
    if not segment_ids:
        return MEMBER_SCHEMA.to_frame()
    return reader.frame(
        "SELECT m.segment_id, m.subject_id FROM segment_memberships m WHERE m.exited_at IS NULL "
        f"AND m.segment_id IN ({_in_list(segment_ids)}) AND {may_profile('m.subject_id')}",
        MEMBER_SCHEMA,
    )


def countable_stays(reader: FrameReader, segment_ids: Sequence[int]) -> pl.DataFrame:
    """Every stay, open or ended, in ``segment_ids`` of subjects countable *now*: a trend drawn from
    them leaves a withdrawn or restricted person out of every past day too (``STAY_SCHEMA``)."""
    if not segment_ids:
        return STAY_SCHEMA.to_frame()
    return reader.frame(
        "SELECT m.segment_id, m.subject_id, m.entered_at, m.exited_at FROM segment_memberships m "
        f"WHERE m.segment_id IN ({_in_list(segment_ids)}) AND {may_profile('m.subject_id')}",
        STAY_SCHEMA,
    )
