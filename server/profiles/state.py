"""The profile state and the one set of functions that builds it, for both evaluators.

The state of a subject is three frames, each of which combines by a rule that does not depend on
order (``combine``): daily rollups add up, first and last times take their
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
from datetime import datetime
from typing import Final

import polars as pl

from server.frames.profiles import (
    DAILY_SCHEMA,
    INTEREST_SCHEMA,
    PURCHASE,
    STATE_EVENT_SCHEMA,
    SUMMARY_SCHEMA,
    TIMESTAMP,
)
from server.profiles.config import InterestConfig

__all__ = [
    "ProfileState",
    "combine",
    "daily_of",
    "decay_factor",
    "decayed_interests",
    "interests_of",
    "state_of",
    "summary_of",
]

LN2: Final = math.log(2.0)
MICROSECONDS_PER_DAY: Final = 86_400_000_000
UNDERFLOW_HALF_LIVES: Final = 900.0
"""2^-900 is still a normal double (the smallest is 2^-1022)."""


@dataclass(frozen=True, slots=True)
class ProfileState:
    daily: pl.DataFrame
    summary: pl.DataFrame
    interests: pl.DataFrame

    @classmethod
    def empty(cls) -> ProfileState:
        return cls(
            daily=DAILY_SCHEMA.to_frame(),
            summary=SUMMARY_SCHEMA.to_frame(),
            interests=INTEREST_SCHEMA.to_frame(),
        )

    def subjects(self) -> pl.Series:
        return self.summary["subject_id"]

    def where(self, predicate: pl.Expr) -> ProfileState:
        """The rows of every frame that ``predicate`` (over ``subject_id``) keeps."""
        return ProfileState(
            self.daily.filter(predicate),
            self.summary.filter(predicate),
            self.interests.filter(predicate),
        )

    def without(self, subject_ids: Sequence[int]) -> ProfileState:
        """The state of every other subject."""
        return self.where(~pl.col("subject_id").is_in(list(subject_ids))) if subject_ids else self


def decay_exponent(elapsed: pl.Expr, half_life_days: pl.Expr) -> pl.Expr:
    """ln(2^(-elapsed/h)) for a Duration ``elapsed``."""
    days = elapsed.dt.total_microseconds().cast(pl.Float64) / MICROSECONDS_PER_DAY
    return -LN2 * days / half_life_days


def decay_factor(elapsed: pl.Expr, half_life_days: pl.Expr) -> pl.Expr:
    """2^(-elapsed/h) for a Duration ``elapsed``: how much of an accumulator is left after it."""
    return decay_exponent(elapsed, half_life_days).exp()


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


def _named_topics(events: pl.LazyFrame, config: InterestConfig) -> pl.LazyFrame:
    """One row per (event, topic it names), with the topic's half-life; topics as ``topic_type``.

    Parents are not expanded here but summed when read (``decayed_interests``), which keeps the
    state a third the size; so a topic an event names beside one of its descendants is dropped
    (the descendant carries the event to it), and a topic named twice counts once. Events naming
    one topic skip that check. A topic the taxonomy no longer holds counts for nothing.
    """
    topic = config.topic_type
    named = events.filter(pl.col("topics").is_not_null()).select("subject_id", "type", "occurred_at", "topics")
    several = pl.col("topics").str.contains(";", literal=True)
    single = named.filter(~several).select(
        "subject_id", "type", "occurred_at", topic=pl.col("topics").cast(topic, strict=False)
    )
    listed = (
        named.filter(several)
        .with_row_index("_event")
        .select("_event", "subject_id", "type", "occurred_at", topic=pl.col("topics").str.split(";"))
        .explode("topic")
        .with_columns(pl.col("topic").cast(topic, strict=False))
        .unique(subset=["_event", "topic"])
    )
    covered = (
        listed.select("_event", "topic")
        .join(config.typed_strict_ancestors().lazy(), on="topic", how="inner")
        .select("_event", topic="counted_as")
    )
    deepest = listed.join(covered, on=["_event", "topic"], how="anti").drop("_event")
    return (
        pl.concat([single, deepest.select("subject_id", "type", "occurred_at", "topic")])
        .filter(pl.col("topic").is_not_null())
        .join(config.typed_half_lives().lazy(), on="topic", how="inner")
    )


def interests_of(events: pl.LazyFrame, config: InterestConfig, *, streaming: bool = False) -> pl.DataFrame:
    """Each (event, topic) is an accumulator (its type's weight, its time); they combine per topic."""
    singles = (
        _named_topics(events, config)
        .join(config.weight_frame().lazy(), on="type", how="inner")
        .filter(pl.col("weight") > 0)
        .select(
            "subject_id",
            "topic",
            pl.col("weight").alias("score"),
            pl.col("occurred_at").alias("as_of"),
            "half_life_days",
        )
    )
    return _combine_interests(singles, streaming=streaming)


def _combine_interests(accumulators: pl.LazyFrame, *, streaming: bool = False) -> pl.DataFrame:
    """``accumulators`` carry their topic's ``half_life_days``.

    Decaying each accumulator to its group's latest ``as_of`` would need that maximum inside the
    group (a window per group: ~5x slower on millions of rows). Instead each is decayed to one
    reference, the latest time of all, summed, and the sum brought back to its group's latest
    time: the same value, since decay multiplies. Groups whose latest event is more than
    ``UNDERFLOW_HALF_LIVES`` half-lives before the reference would underflow that way and take
    the window route (rare: it needs events years apart under a short half-life). The input is
    materialized once, so that route does not compute it again.
    """
    keys = ("subject_id", "topic")
    given = accumulators.collect(engine="streaming" if streaming else "auto")
    reference = pl.col("as_of").max()
    exponent = decay_exponent(reference - pl.col("as_of"), pl.col("half_life_days"))  # <= 0
    fast = (
        given.lazy()
        .with_columns(_e=exponent)
        .group_by(keys)
        .agg(_sum=(pl.col("score") * pl.col("_e").exp()).sum(), _top=pl.col("_e").max(), as_of=pl.col("as_of").max())
        .collect()
    )
    safe = pl.col("_top") > -UNDERFLOW_HALF_LIVES * LN2
    exact = fast.filter(safe).select(*keys, score=pl.col("_sum") * (-pl.col("_top")).exp(), as_of="as_of")
    far = fast.filter(~safe)
    as_text = pl.col("topic").cast(pl.String)
    if far.height == 0:
        return exact.select(list(INTEREST_SCHEMA)).with_columns(as_text)
    latest = pl.col("as_of").max()
    slow = (
        given.join(far.select(keys), on=keys, how="semi")
        .group_by(keys)
        .agg(
            score=(pl.col("score") * decay_factor(latest - pl.col("as_of"), pl.col("half_life_days"))).sum(),
            as_of=latest,
        )
    )
    return pl.concat([exact, slow.select(exact.columns)]).select(list(INTEREST_SCHEMA)).with_columns(as_text)


def decayed_interests(interests: pl.LazyFrame, config: InterestConfig, as_of: datetime) -> pl.LazyFrame:
    """(subject_id, topic, raw) at ``as_of``: every accumulator decayed to it (never grown: a later
    ``as_of`` counts as now), and each parent topic the sum of its own and its descendants'."""
    at = pl.lit(as_of, dtype=TIMESTAMP)
    elapsed = pl.when(pl.col("as_of") < at).then(at - pl.col("as_of")).otherwise(pl.duration(microseconds=0))
    return (
        interests.join(config.half_lives().lazy(), on="topic", how="inner")
        .with_columns(raw=pl.col("score") * decay_factor(elapsed, pl.col("half_life_days")))
        .join(config.lineage.lazy().select("topic", "counted_as"), on="topic", how="inner")
        .group_by("subject_id", pl.col("counted_as").alias("topic"))
        .agg(pl.col("raw").sum())
    )


def state_of(events: pl.LazyFrame, config: InterestConfig, *, streaming: bool = False) -> ProfileState:
    """The state of a set of events (``STATE_EVENT_SCHEMA``): the rollups and first/last times in
    one collect, then the interest accumulators."""
    events = events.select(list(STATE_EVENT_SCHEMA))
    daily, summary = pl.collect_all([daily_of(events), summary_of(events)], engine="streaming" if streaming else "auto")
    return ProfileState(daily=daily, summary=summary, interests=interests_of(events, config, streaming=streaming))


def combine(states: list[ProfileState], config: InterestConfig) -> ProfileState:
    """The state of the union of the events behind ``states``: a fold, a merge of subjects, or both.

    Each input must already be keyed by the subject it is to be combined under (a merge re-keys
    the loser's frames to its winner first).
    """
    if len(states) == 1:
        return states[0]
    daily = pl.concat([s.daily for s in states]).lazy()
    summary = pl.concat([s.summary for s in states]).lazy()
    interests = (
        pl.concat([s.interests for s in states]).lazy().join(config.half_lives().lazy(), on="topic", how="inner")
    )
    keys = ["subject_id", "day", "type", "channel"]
    daily_sums, summaries = pl.collect_all(
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
        ]
    )
    return ProfileState(daily_sums, summaries, _combine_interests(interests))
