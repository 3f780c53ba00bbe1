"""The lookup's interests are the profile's: ``ranked_interests`` against ``top_interests`` on
random accumulator states, sensitive topics, parents, ties, decay and bot-like days included."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.frames.profiles import DAILY_SCHEMA, INTEREST_SCHEMA, SUMMARY_SCHEMA
from server.partners.interests import Accumulator, interest_index, ranked_interests
from server.profiles.config import InterestConfig, ProfileConfig
from server.profiles.features import FeatureInputs, as_of_day, top_interests
from server.profiles.state import ProfileState
from server.taxonomy.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
CONFIG = ProfileConfig(interests=InterestConfig.from_taxonomy(TAXONOMY), bot_events_per_day=50)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOPICS = [
    "travel",
    "healthy-living",
    "healthy-living/fitness-and-exercise",
    "healthy-living/fitness-and-exercise/running-and-jogging",
    "healthy-living/weight-loss",  # sensitive
    "healthy-living/childrens-health",  # sensitive
    "automotive/auto-type/electric-vehicles",
    "automotive",
    "no-such-topic",
]

accumulators = st.lists(
    st.tuples(
        st.sampled_from(TOPICS),
        st.floats(min_value=0.01, max_value=500, allow_nan=False),
        st.integers(min_value=-3 * 24 * 60, max_value=400 * 24 * 60),  # minutes before NOW (negative: after)
    ),
    max_size=8,
    unique_by=lambda row: row[0],
)
days = st.lists(st.tuples(st.integers(min_value=-2, max_value=60), st.integers(min_value=1, max_value=80)), max_size=5)


def _profile_top(
    rows: list[tuple[str, float, datetime]], daily: list[tuple[int, int]], k: int
) -> list[tuple[str, str, float]]:
    state = ProfileState(
        daily=pl.DataFrame(
            [(1, day, "page_view", "web", events, 0.0) for day, events in daily], schema=DAILY_SCHEMA, orient="row"
        ),
        summary=pl.DataFrame([(1, NOW, NOW, None, None)], schema=SUMMARY_SCHEMA, orient="row"),
        interests=pl.DataFrame([(1, t, s, a) for t, s, a in rows], schema=INTEREST_SCHEMA, orient="row"),
    )
    inputs = FeatureInputs.of(
        state,
        traits=pl.DataFrame(schema={"subject_id": pl.Int64, "age_band": pl.String, "region": pl.String}),
        identities=pl.DataFrame(schema={"subject_id": pl.Int64, "kind": pl.String, "partner_id": pl.Int64}),
    )
    config = dataclasses.replace(CONFIG, top_k=k)
    found = top_interests(inputs, as_of=NOW, config=config, taxonomy=TAXONOMY).collect()
    return [(row["topic"], row["name"], row["score"]) for row in found.iter_rows(named=True)]


@settings(max_examples=300, deadline=None)
@given(accumulators, days, st.integers(min_value=0, max_value=10))
def test_ranked_interests_equal_the_profiles(
    drawn: list[tuple[str, float, int]], drawn_days: list[tuple[int, int]], k: int
) -> None:
    rows = [(topic, score, NOW - timedelta(minutes=minutes)) for topic, score, minutes in drawn]
    today = as_of_day(NOW)
    daily = [(today - ago, events) for ago, events in dict(drawn_days).items()]
    expected = _profile_top(rows, daily, k) if k else []
    busiest = max((events for day, events in daily if day <= today), default=None)
    got = ranked_interests(
        interest_index(CONFIG, TAXONOMY),
        [Accumulator(topic, score, at) for topic, score, at in rows],
        busiest_day_events=busiest,
        as_of=NOW,
        top_k=k,
    )
    assert [(i.topic, i.name) for i in got] == [(topic, name) for topic, name, _ in expected]
    for interest, (_, _, score) in zip(got, expected, strict=True):
        assert interest.score == pytest.approx(score, rel=1e-12)


@pytest.mark.parametrize("ulps", [-2, 2])
def test_interests_equal_but_for_a_floats_last_bits_rank_in_topic_order(ulps: int) -> None:
    """As ``top_interests`` ranks them: the sign of a rounding error must not order a partner's answer."""
    accumulators = [
        Accumulator("travel", 3.0 * (1 + ulps * 2.0**-52), NOW),
        Accumulator("automotive", 3.0, NOW),
    ]
    ranked = ranked_interests(interest_index(CONFIG, TAXONOMY), accumulators, busiest_day_events=1, as_of=NOW, top_k=5)
    assert ranked[0].score != ranked[1].score
    assert [interest.topic for interest in ranked] == ["automotive", "travel"]
