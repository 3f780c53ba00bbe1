"""Each ingestion pass's counts by outcome, added to its source's tallies for the day.

Before these, what a pass rejected (and why), duplicated or merged lived only in its audit
entry, as totals without codes; the data-quality report (``server.profiles.quality``) needs them
per source and code. Written in the pass's own transaction with one statement (additive, so no
read first): a pass that rolls back leaves no count, and the tallies never drift from the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime

import polars as pl
from sqlalchemy.orm import Session

from server.frames.tallies import TALLY_SCHEMA, Outcome
from server.frames.tallies import rejected as rejected_outcome
from server.ingest.vocabulary import RejectCode
from server.storage.bulk import bulk_accumulate
from server.storage.tables import IngestTallyRow

__all__ = ["record_tallies", "tally_frame"]

_EPOCH = date(1970, 1, 1)


def tally_frame(
    *, source: str, at: datetime, counts: Mapping[Outcome, int], rejected: Iterable[RejectCode]
) -> pl.DataFrame:
    """``TALLY_SCHEMA`` rows of one pass: ``counts`` as given, ``rejected`` (one code per rejected
    record) counted by code; outcomes of zero records are left out, the rest in outcome order.

    Built from a ``Counter`` rather than Polars expressions: a pass has a dozen outcomes at most,
    and on frames that small Polars' per-call overhead (0.6 ms) was the larger part of the cost.
    """
    by_outcome = {outcome.value: n for outcome, n in counts.items() if n}
    by_outcome.update((rejected_outcome(code), n) for code, n in Counter(rejected).items())
    names = sorted(by_outcome)  # every pass touches its keys in one order
    return pl.DataFrame(
        {
            "source": [source] * len(names),
            "day": [(at.astimezone(UTC).date() - _EPOCH).days] * len(names),
            "outcome": names,
            "count": [by_outcome[name] for name in names],
        },
        schema=TALLY_SCHEMA,
    )


def record_tallies(session: Session, tallies: pl.DataFrame) -> None:
    """Add ``tally_frame`` rows to the stored tallies in one statement."""
    bulk_accumulate(session, IngestTallyRow, tallies, keys=["source", "day", "outcome"], add=["count"])
