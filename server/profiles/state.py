"""The profile state and the one set of functions that builds it, for both evaluators.

The state of a subject is four frames, each of which combines by a rule that does not depend on
order (``combine``): daily rollups and interest counts add up, first and last times take their
minimum and maximum, and decayed interest accumulators fold as DESIGN describes. The state of a
set of events is the combination of the states of single events, so folding batches one by one
(real time), merging two subjects, or computing from every event at once (batch build) give the
same state, to floating-point rounding on the interest scores.

Accumulators: an event of weight w at time t is (score w, as_of t). Two accumulators of a topic
combine as the sum of each score decayed from its ``as_of`` to the later of the two, so
``score·2^(-(t-as_of)/h) + w`` when the event is newer and ``score + w·2^(-(as_of-t)/h)``
otherwise. ``h`` is the half-life of the topic, in days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from server.frames.profiles import (
    DAILY_SCHEMA,
    INTEREST_COUNT_SCHEMA,
    INTEREST_SCHEMA,
    PURCHASE,
    STATE_EVENT_SCHEMA,
    SUMMARY_SCHEMA,
)
from server.profiles.config import InterestConfig

__all__ = [
    "ProfileState",
    "combine",
    "daily_of",
    "decay_factor",
    "interest_counts_of",
    "interests_of",
    "state_of",
    "summary_of",
]

LN2: Final = math.log(2.0)
MICROSECONDS_PER_DAY: Final = 86_400_000_000


@dataclass(frozen=True, slots=True)
class ProfileState:
    daily: pl.DataFrame
    summary: pl.DataFrame
    interests: pl.DataFrame
    interest_counts: pl.DataFrame

    @classmethod
    def empty(cls) -> ProfileState:
        return cls(
            daily=DAILY_SCHEMA.to_frame(),
            summary=SUMMARY_SCHEMA.to_frame(),
            interests=INTEREST_SCHEMA.to_frame(),
            interest_counts=INTEREST_COUNT_SCHEMA.to_frame(),
        )

    def subjects(self) -> pl.Series:
        return self.summary["subject_id"]

    def without(self, subject_ids: Sequence[int]) -> ProfileState:
        """The state of every other subject."""
        if not subject_ids:
            return self
        keep = ~pl.col("subject_id").is_in(list(subject_ids))
        return ProfileState(
            self.daily.filter(keep),
            self.summary.filter(keep),
            self.interests.filter(keep),
            self.interest_counts.filter(keep),
        )


def decay_factor(elapsed: pl.Expr, half_life_days: pl.Expr) -> pl.Expr:
    """2^(-elapsed/h) for a Duration ``elapsed``: how much of an accumulator is left after it."""
    days = elapsed.dt.total_microseconds().cast(pl.Float64) / MICROSECONDS_PER_DAY
    return (-LN2 * days / half_life_days).exp()


def daily_of(events: pl.LazyFrame) -> pl.LazyFrame:
    """Count and revenue per subject, day (UTC), type and channel."""
    return (
        events.group_by(
            "subject_id",
            pl.col("occurred_at").dt.date().cast(pl.Int32).alias("day"),
            "type",
            "channel",
        )
        .agg(events=pl.len().cast(pl.Int64), amount=pl.col("amount").fill_null(0.0).sum())
        .select(list(DAILY_SCHEMA))
    )


def summary_of(events: pl.LazyFrame) -> pl.LazyFrame:
    purchase_time = pl.when(pl.col("type") == PURCHASE).then(pl.col("occurred_at"))
    return events.group_by("subject_id").agg(
        first_seen=pl.col("occurred_at").min(),
        last_seen=pl.col("occurred_at").max(),
        first_purchase=purchase_time.min(),
        last_purchase=purchase_time.max(),
    )


def _topic_events(events: pl.LazyFrame, config: InterestConfig) -> pl.LazyFrame:
    """One row per (event, topic it counts for): each topic it names and their ancestors, once each."""
    return (
        events.filter(pl.col("topics").is_not_null())
        .with_row_index("_event")
        .select("_event", "subject_id", "type", "occurred_at", pl.col("topics").str.split(";").alias("topic"))
        .explode("topic")
        .join(config.lineage.lazy(), on="topic", how="inner")
        .unique(subset=["_event", "counted_as"])
        .select("subject_id", pl.col("counted_as").alias("topic"), "type", "occurred_at", "half_life_days")
    )


def interests_of(events: pl.LazyFrame, config: InterestConfig) -> pl.LazyFrame:
    """Each (event, topic) is an accumulator (its type's weight, its time); they combine per topic."""
    singles = (
        _topic_events(events, config)
        .join(config.weight_frame().lazy(), on="type", how="inner")
        .filter(pl.col("weight") > 0)
        .select("subject_id", "topic", pl.col("weight").alias("score"), pl.col("occurred_at").alias("as_of"))
    )
    return _combine_interests(singles, config)


def interest_counts_of(events: pl.LazyFrame, config: InterestConfig) -> pl.LazyFrame:
    """The explanation beside each score: events per type, and the last one's time."""
    return (
        _topic_events(events, config)
        .group_by("subject_id", "topic", "type")
        .agg(events=pl.len().cast(pl.Int64), last_seen=pl.col("occurred_at").max())
        .select(list(INTEREST_COUNT_SCHEMA))
    )


def _combine_interests(accumulators: pl.LazyFrame, config: InterestConfig) -> pl.LazyFrame:
    latest = pl.col("as_of").max()
    return (
        accumulators.join(config.half_lives().lazy(), on="topic", how="inner")
        .group_by("subject_id", "topic")
        .agg(
            score=(pl.col("score") * decay_factor(latest - pl.col("as_of"), pl.col("half_life_days"))).sum(),
            as_of=latest,
        )
        .select(list(INTEREST_SCHEMA))
    )


def state_of(events: pl.LazyFrame, config: InterestConfig, *, streaming: bool = False) -> ProfileState:
    """The state of a set of events (``STATE_EVENT_SCHEMA``), all four frames in one collect."""
    events = events.select(list(STATE_EVENT_SCHEMA))
    daily, summary, interests, counts = pl.collect_all(
        [daily_of(events), summary_of(events), interests_of(events, config), interest_counts_of(events, config)],
        engine="streaming" if streaming else "auto",
    )
    return ProfileState(daily=daily, summary=summary, interests=interests, interest_counts=counts)


def combine(states: list[ProfileState], config: InterestConfig) -> ProfileState:
    """The state of the union of the events behind ``states``: a fold, a merge of subjects, or both.

    Each input must already be keyed by the subject it is to be combined under (a merge re-keys
    the loser's frames to its winner first).
    """
    if len(states) == 1:
        return states[0]
    daily = pl.concat([s.daily for s in states]).lazy()
    summary = pl.concat([s.summary for s in states]).lazy()
    interests = pl.concat([s.interests for s in states]).lazy()
    counts = pl.concat([s.interest_counts for s in states]).lazy()
    keys = ["subject_id", "day", "type", "channel"]
    combined = pl.collect_all(
        [
            daily.group_by(keys).agg(pl.col("events").sum(), pl.col("amount").sum()).select(list(DAILY_SCHEMA)),
            summary.group_by("subject_id")
            .agg(
                pl.col("first_seen").min(),
                pl.col("last_seen").max(),
                pl.col("first_purchase").min(),
                pl.col("last_purchase").max(),
            )
            .select(list(SUMMARY_SCHEMA)),
            _combine_interests(interests, config),
            counts.group_by("subject_id", "topic", "type")
            .agg(pl.col("events").sum(), pl.col("last_seen").max())
            .select(list(INTEREST_COUNT_SCHEMA)),
        ]
    )
    return ProfileState(*combined)
