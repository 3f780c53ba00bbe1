"""The rule frame: one row per subject with a profile, holding every value the rules to evaluate read.

Its rows are ``server.profiles.features.features`` (``FEATURE_SCHEMA``, as of a moment): a
subject is evaluated exactly when it has a profile to show. To those columns it adds, for the
rules at hand only (``Needs``):

- each topic's interest score, the 0..1 score a profile shows (``shown_interests``: decayed to
  the moment, a parent counting its descendants), 0 for a topic the subject has no interest in,
  null for a bot-like subject (it has no interests) and for a sensitive or unknown topic (never
  scored); and, when a rule asks for the top ones, the topic's rank among the subject's shown
  interests (null when it has none in that topic);
- each event window's count from the daily rollups: events of a type (on one channel, when
  given) in the last N UTC days as the profile windows count them
  (``as_of_day - N < day <= as_of_day``), or between two UTC days, both included; 0 when none;
- each stable random bucket (``server.segments.buckets``).

The evaluator adds one boolean column per segment a rule depends on (``segment_column``).
Nothing here reads the database or collects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from server.profiles.config import ProfileConfig
from server.profiles.features import EPOCH, FeatureInputs, as_of_day, features, shown_interests
from server.profiles.tiers import CutPoints
from server.segments.buckets import bucket_expr
from server.segments.rules import DateRange, EventWindow, InSegment, InterestScore, LastDays, RandomBucket, Rule, walk
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "Needs",
    "WindowKey",
    "bucket_column",
    "event_count_column",
    "interest_rank_column",
    "interest_score_column",
    "needs_of",
    "rule_frame",
    "segment_column",
]

SUBJECT_ID: Final = "subject_id"


@dataclass(frozen=True, slots=True)
class WindowKey:
    """What an event count counts: a type, on one channel or all (None), in a window."""

    event_type: str
    channel: str | None
    window: LastDays | DateRange


@dataclass(frozen=True, slots=True)
class Needs:
    """The columns beyond the features that a set of rules reads."""

    topics: frozenset[str] = frozenset()
    ranked: bool = False
    windows: frozenset[WindowKey] = frozenset()
    buckets: frozenset[tuple[str, int]] = frozenset()
    segments: frozenset[str] = frozenset()


def needs_of(rules: Iterable[Rule]) -> Needs:
    nodes = [node for rule in rules for node in walk(rule)]
    interests = [node for node in nodes if isinstance(node, InterestScore)]
    return Needs(
        topics=frozenset(node.topic for node in interests),
        ranked=any(node.top is not None for node in interests),
        windows=frozenset(
            WindowKey(node.event_type, node.channel, node.window) for node in nodes if isinstance(node, EventWindow)
        ),
        buckets=frozenset((node.salt, node.buckets) for node in nodes if isinstance(node, RandomBucket)),
        segments=frozenset(node.segment for node in nodes if isinstance(node, InSegment)),
    )


# Column names: a prefix no feature has, then the node's own values (any text is a valid name).
def interest_score_column(topic: str) -> str:
    return f"interest_score:{topic}"


def interest_rank_column(topic: str) -> str:
    return f"interest_rank:{topic}"


def event_count_column(key: WindowKey) -> str:
    window = key.window
    span = f"last:{window.days}" if isinstance(window, LastDays) else f"{window.start}..{window.end}"
    return f"events:{span}:{key.channel or '*'}:{key.event_type}"


def bucket_column(salt: str, buckets: int) -> str:
    return f"bucket:{buckets}:{salt}"


def segment_column(name: str) -> str:
    return f"segment:{name}"


def _days(window: LastDays | DateRange, day: int) -> pl.Expr:
    if isinstance(window, LastDays):
        return (pl.col("day") > day - window.days) & (pl.col("day") <= day)
    return pl.col("day").is_between((window.start - EPOCH).days, (window.end - EPOCH).days, closed="both")


def _event_counts(daily: pl.LazyFrame, windows: frozenset[WindowKey], day: int) -> pl.LazyFrame:
    counts = {}
    for key in sorted(windows, key=event_count_column):
        matches = (pl.col("type") == key.event_type) & _days(key.window, day)
        if key.channel is not None:
            matches = matches & (pl.col("channel") == key.channel)
        counts[event_count_column(key)] = pl.col("events").filter(matches).sum().cast(pl.Int64)
    types = sorted({key.event_type for key in windows})
    return daily.filter(pl.col("type").is_in(types)).group_by(SUBJECT_ID).agg(**counts)


def _interests(
    inputs: FeatureInputs, needs: Needs, *, as_of: datetime, config: ProfileConfig, taxonomy: Taxonomy
) -> tuple[pl.LazyFrame, list[pl.Expr]]:
    """The scores (and ranks) per subject of the topics a profile shows, and how to fill the gaps."""
    shown = sorted(topic for topic in needs.topics if topic in taxonomy and not taxonomy.is_sensitive(topic))
    scores = shown_interests(inputs, as_of=as_of, config=config, taxonomy=taxonomy).filter(pl.col("topic").is_in(shown))
    columns: dict[str, pl.Expr] = {}
    for topic in shown:
        mine = pl.col("topic") == topic
        columns[interest_score_column(topic)] = pl.col("score").filter(mine).first()
        if needs.ranked:
            columns[interest_rank_column(topic)] = pl.col("rank").filter(mine).first()
    frame = scores.group_by(SUBJECT_ID).agg(**columns)
    interested = ~pl.col("bot_like").fill_null(value=True)
    fills = [
        pl.when(interested)
        .then(pl.col(interest_score_column(topic)).fill_null(0.0))
        .alias(interest_score_column(topic))
        for topic in shown
    ]
    for topic in sorted(needs.topics.difference(shown)):  # sensitive or unknown: never scored
        fills.append(pl.lit(None, dtype=pl.Float64).alias(interest_score_column(topic)))
        if needs.ranked:
            fills.append(pl.lit(None, dtype=pl.Int64).alias(interest_rank_column(topic)))
    return frame, fills


def rule_frame(
    inputs: FeatureInputs,
    needs: Needs,
    *,
    as_of: datetime,
    config: ProfileConfig,
    cut_points: CutPoints | None,
    taxonomy: Taxonomy,
) -> pl.LazyFrame:
    """The features of ``inputs``' subjects as of ``as_of`` and the columns ``needs`` names."""
    frame = features(inputs, as_of=as_of, config=config, cut_points=cut_points)
    if needs.topics:
        scores, fills = _interests(inputs, needs, as_of=as_of, config=config, taxonomy=taxonomy)
        frame = frame.join(scores, on=SUBJECT_ID, how="left").with_columns(fills)
    if needs.windows:
        counts = _event_counts(inputs.daily, needs.windows, as_of_day(as_of))
        names = [event_count_column(key) for key in needs.windows]
        frame = frame.join(counts, on=SUBJECT_ID, how="left").with_columns(pl.col(names).fill_null(0))
    if needs.buckets:
        frame = frame.with_columns(
            bucket_expr(pl.col(SUBJECT_ID), salt, buckets).alias(bucket_column(salt, buckets))
            for salt, buckets in sorted(needs.buckets)
        )
    return frame
