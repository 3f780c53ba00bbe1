"""Columns of the profile state, as the real-time fold, the batch build and the reads share them.

The state is what both evaluators write (``server.profiles.state``): additive daily rollups, first
and last times, and decayed interest accumulators per topic an event named (a parent topic's
interest is summed from its own and its descendants' when read). Everything a profile shows is
computed from it when read (``server.profiles.features``), so there is one definition of each
feature; the explanation of a score (events by type, last seen) is read, exactly, from the
subject's own events when asked.

``STATE_EVENT_SCHEMA`` is the shape of the events the state is folded from: the stored events'
own columns, whether they come from an ingest batch or a bulk read of the events table.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = [
    "DAILY_SCHEMA",
    "INTEREST_SCHEMA",
    "PURCHASE",
    "STATE_EVENT_SCHEMA",
    "SUMMARY_SCHEMA",
    "TIMESTAMP",
]

TIMESTAMP: Final = pl.Datetime("us", "UTC")
PURCHASE: Final = "purchase"
"""The event type whose ``amount`` is revenue: monetary features and the repeat-purchase summary."""

STATE_EVENT_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "type": pl.String(),
        "channel": pl.String(),
        "occurred_at": TIMESTAMP,
        "topics": pl.String(),  # known topic ids joined by ';', or null
        "amount": pl.Float64(),
    }
)

DAILY_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "day": pl.Int32(),  # days since 1970-01-01 (UTC): one integer on both backends
        "type": pl.String(),
        "channel": pl.String(),
        "events": pl.Int64(),
        "amount": pl.Float64(),  # sum of amounts; 0 when the events carried none
    }
)

SUMMARY_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "first_seen": TIMESTAMP,
        "last_seen": TIMESTAMP,
        "first_purchase": TIMESTAMP,  # null until the first purchase
        "last_purchase": TIMESTAMP,
    }
)

INTEREST_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "topic": pl.String(),
        "score": pl.Float64(),  # the decayed sum of weights, as of ``as_of``
        "as_of": TIMESTAMP,  # the latest event folded in
    }
)
