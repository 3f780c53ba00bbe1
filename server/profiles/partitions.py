"""Partitions of subjects for the batch build: contiguous ranges of subject ids.

Subject ids are random 63-bit numbers (``server.subjects.service.new_subject_id``), so equal
ranges hold about as many subjects each, and a range is what the indexes serve: the events'
subject index and the state tables' keys, which all lead with ``subject_id``, find a partition's
rows without reading the others (a ``subject_id % n`` partition would make every partition read
every row). A subject is in exactly one partition of a given count; the first range starts at the
smallest 64-bit integer and the last ends at the largest, so together they cover every id there is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import polars as pl

__all__ = ["EVENTS_PER_PARTITION", "MAX_PARTITIONS", "Partition", "default_partition_count", "partitions_of"]

SMALLEST_ID: Final = -(2**63)
LARGEST_ID: Final = 2**63 - 1
SPAN: Final = 2**63
"""Ids are drawn below this; ranges divide [0, SPAN) evenly and the first also takes the negatives."""
MAX_PARTITIONS: Final = 10_000
EVENTS_PER_PARTITION: Final = 100_000
"""How many stored events a partition holds when the caller does not choose. Each partition holds
the writers' turn while it reads, computes and writes, and ingestion waits for that turn: at most
``AUDIENCE_DATABASE_POOL_TIMEOUT_SECONDS`` (5 s) on SQLite, the statement timeout on PostgreSQL.
Measured on two busy cores with demo data (half the events of profiled subjects): ~180,000 events
held it ~4 s on either backend, most of it deleting and inserting the state rows; at this size
about 2 s. Memory is bounded by it too."""


@dataclass(frozen=True, slots=True)
class Partition:
    """Subjects ``low <= subject_id <= high``: partition ``index`` of ``count``."""

    index: int
    count: int
    low: int
    high: int

    @classmethod
    def of(cls, index: int, count: int) -> Partition:
        if not 1 <= count <= MAX_PARTITIONS or not 0 <= index < count:
            raise ValueError(f"partition {index} of {count} does not exist")
        low = SMALLEST_ID if index == 0 else index * SPAN // count
        high = LARGEST_ID if index == count - 1 else (index + 1) * SPAN // count - 1
        return cls(index=index, count=count, low=low, high=high)

    @classmethod
    def whole(cls) -> Partition:
        return cls.of(0, 1)

    def holds(self, subject_id: pl.Expr) -> pl.Expr:
        return subject_id.is_between(self.low, self.high, closed="both")

    def predicate(self, column: str = "subject_id") -> str:
        """The SQL condition on ``column`` (a constant of the caller): two integers of ours, never input."""
        return f"{column} BETWEEN {int(self.low)} AND {int(self.high)}"


def partitions_of(count: int) -> list[Partition]:
    return [Partition.of(index, count) for index in range(count)]


def default_partition_count(events: int, *, per_partition: int = EVENTS_PER_PARTITION) -> int:
    return max(1, min(MAX_PARTITIONS, math.ceil(events / per_partition)))
