"""What the batch build reads of the events, in bulk (``server.storage.arrow_reads``), by partition.

Only the columns the state is built from (``STATE_EVENT_SCHEMA``), and only the events of subjects
who grant ``profiling`` now and are under no restriction: the checks are in the query, so the
events of everyone else never leave the database.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from server.frames.profiles import STATE_EVENT_SCHEMA
from server.profiles.partitions import Partition
from server.storage.arrow_reads import FrameReader
from server.storage.restrictions import may_profile

__all__ = ["consenting_events", "stored_event_count"]

_COUNT: Final = pl.Schema({"events": pl.Int64()})


def consenting_events(reader: FrameReader, partition: Partition) -> pl.DataFrame:
    """Every stored event of the partition's subjects with ``profiling`` consent (our own, not a
    partner's) and no processing restriction."""
    columns = ", ".join(f"e.{name}" for name in STATE_EVENT_SCHEMA)
    query = (
        f"SELECT {columns} FROM events e WHERE {partition.predicate('e.subject_id')} AND {may_profile('e.subject_id')}"
    )
    return reader.frame(query, STATE_EVENT_SCHEMA)


def stored_event_count(reader: FrameReader) -> int:
    """All stored events, to size the partitions when the caller does not."""
    return int(reader.frame("SELECT count(*) FROM events", _COUNT)["events"][0])
