"""A visitor's top interests on the lookup path: ``top_interests``' numbers for one subject, without
a Polars plan per request.

The visitor lookup is the hot path (DESIGN: 2,000 lookups/s on two workers); building and running
``server.profiles.features.top_interests`` for one subject costs milliseconds of fixed Polars
overhead, so this module evaluates the same definition over the handful of accumulators one
subject holds: each decays to ``as_of`` with its topic's half-life (``2^(-elapsed/h)``, never grown
for a later ``as_of``), a topic counts as itself and every ancestor, sensitive topics are never
counted nor shown, ``score = raw / (raw + saturation)``, ties (to ``RANK_DECIMALS`` places) rank by
topic id, and a bot-like
subject or one without an event up to ``as_of``'s day shows none. Every constant comes from the
same ``ProfileConfig`` and taxonomy. ``tests/partners/test_interest_parity.py`` checks the
answers against ``top_interests`` on random states; a change there must be made here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from server.profiles.config import ProfileConfig
from server.profiles.features import RANK_DECIMALS
from server.profiles.state import LN2, MICROSECONDS_PER_DAY
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["Accumulator", "InterestIndex", "RankedInterest", "interest_index", "ranked_interests"]

_ONE_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Accumulator:
    """One stored accumulator (``profile_interests``): a topic's decayed sum at its latest event."""

    topic: str
    score: float
    as_of: datetime


@dataclass(frozen=True, slots=True)
class RankedInterest:
    topic: str
    name: str
    score: float


@dataclass(frozen=True, slots=True)
class InterestIndex:
    """The profile configuration as lookups: what ``top_interests`` joins against, once per process."""

    names: Mapping[str, str]
    """Non-sensitive topics and their names: only these are counted and shown."""
    counted_as: Mapping[str, tuple[str, ...]]
    """Each topic and its ancestors (the lineage)."""
    half_lives: Mapping[str, float]
    saturation: float
    bot_events_per_day: int


_INDEXES: dict[tuple[int, int], tuple[ProfileConfig, Taxonomy, InterestIndex]] = {}


def interest_index(config: ProfileConfig, taxonomy: Taxonomy) -> InterestIndex:
    """Built once per (config, taxonomy) pair; both live as long as the process."""
    key = (id(config), id(taxonomy))
    cached = _INDEXES.get(key)
    if cached is not None and cached[0] is config and cached[1] is taxonomy:
        return cached[2]
    shown = taxonomy.frame.filter(~taxonomy.frame["sensitive"])
    names = dict(zip(shown["id"].to_list(), shown["name"].to_list(), strict=True))
    lineage: dict[str, list[str]] = {}
    for topic, counted in config.interests.lineage.select("topic", "counted_as").iter_rows():
        lineage.setdefault(topic, []).append(counted)
    half_lives = dict(config.interests.half_lives().iter_rows())
    index = InterestIndex(
        names=MappingProxyType(names),
        counted_as=MappingProxyType({topic: tuple(counted) for topic, counted in lineage.items()}),
        half_lives=MappingProxyType({str(topic): float(days) for topic, days in half_lives.items()}),
        saturation=config.interests.saturation,
        bot_events_per_day=config.bot_events_per_day,
    )
    _INDEXES[key] = (config, taxonomy, index)
    return index


def ranked_interests(
    index: InterestIndex,
    accumulators: Iterable[Accumulator],
    *,
    busiest_day_events: int | None,
    as_of: datetime,
    top_k: int,
) -> list[RankedInterest]:
    """The ``top_k`` strongest interests of one subject as of ``as_of``.

    ``busiest_day_events``: the most events of any one day up to ``as_of``'s day, None when it has
    none (no profile then).
    """
    if busiest_day_events is None or busiest_day_events > index.bot_events_per_day or top_k <= 0:
        return []
    raw: dict[str, float] = {}
    for accumulator in accumulators:
        half_life = index.half_lives.get(accumulator.topic)
        if accumulator.topic not in index.names or half_life is None:
            continue
        elapsed = max(as_of - accumulator.as_of, timedelta(0)) // _ONE_MICROSECOND
        decayed = accumulator.score * math.exp(-LN2 * (float(elapsed) / MICROSECONDS_PER_DAY) / half_life)
        for counted in index.counted_as.get(accumulator.topic, ()):
            raw[counted] = raw.get(counted, 0.0) + decayed
    scored = [
        (value / (value + index.saturation), topic)
        for topic, value in raw.items()
        if topic in index.names and topic in index.half_lives
    ]
    scored.sort(key=lambda pair: (-round(pair[0], RANK_DECIMALS), pair[1]))  # as top_interests compares them
    return [RankedInterest(topic, index.names[topic], score) for score, topic in scored[:top_k]]
