"""Columns of the profile state, as the real-time fold, the batch build and the reads share them.

The state is what both evaluators write (``server.profiles.state``): additive daily rollups, first
and last times, and decayed interest accumulators. Everything a profile shows is computed from it
when read (``server.profiles.features``), so there is one definition of each feature.

``STATE_EVENT_SCHEMA`` is the shape of the events the state is folded from: the stored events'
own columns, whether they come from an ingest batch or a bulk read of the events table.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = [
    "DAILY_SCHEMA",
    "INTEREST_COUNT_SCHEMA",
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

INTEREST_COUNT_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "topic": pl.String(),
        "type": pl.String(),
        "events": pl.Int64(),
        "last_seen": TIMESTAMP,
    }
)
