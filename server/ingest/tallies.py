"""Each ingestion pass's counts by outcome, added to its source's tallies for the day.

Before these, what a pass rejected (and why), duplicated or merged lived only in its audit
entry, as totals without codes; the data-quality report (``server.profiles.quality``) needs them
per source and code. Written in the pass's own transaction with one statement (additive, so no
read first): a pass that rolls back leaves no count, and the tallies never drift from the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime

import polars as pl
from sqlalchemy.orm import Session

from server.frames.tallies import REJECTED_PREFIX, TALLY_SCHEMA, Outcome
from server.ingest.vocabulary import RejectCode
from server.storage.bulk import bulk_accumulate
from server.storage.tables import IngestTallyRow

__all__ = ["record_tallies", "tally_frame"]

_EPOCH = date(1970, 1, 1)


def tally_frame(
    *, source: str, at: datetime, counts: Mapping[Outcome, int], rejected: Iterable[RejectCode]
) -> pl.DataFrame:
    """``TALLY_SCHEMA`` rows of one pass: ``counts`` as given, ``rejected`` (one code per rejected
    record) counted by code; outcomes of zero records are left out."""
    day = (at.astimezone(UTC).date() - _EPOCH).days
    codes = pl.Series("code", list(rejected), dtype=pl.String)
    by_code = codes.value_counts(name="count").select(
        (pl.lit(REJECTED_PREFIX) + pl.col("code")).alias("outcome"), pl.col("count").cast(pl.Int64)
    )
    fixed = pl.DataFrame(
        {"outcome": [o.value for o in counts], "count": list(counts.values())},
        schema={"outcome": pl.String(), "count": pl.Int64()},
    )
    return (
        pl.concat([fixed, by_code])
        .filter(pl.col("count") > 0)
        .select(pl.lit(source).alias("source"), pl.lit(day, dtype=pl.Int32).alias("day"), "outcome", "count")
        .cast(TALLY_SCHEMA)
        .sort("outcome")  # every pass touches its keys in one order
    )


def record_tallies(session: Session, tallies: pl.DataFrame) -> None:
    """Add ``tally_frame`` rows to the stored tallies in one statement."""
    bulk_accumulate(session, IngestTallyRow, tallies, keys=["source", "day", "outcome"], add=["count"])
