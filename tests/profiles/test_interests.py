"""Interests read from the decayed accumulators: decay, score, parents, top-k, explanation, exclusions."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import polars as pl
import pytest

from server.profiles.config import InterestConfig
from server.profiles.features import INTEREST_SCHEMA, top_interests
from tests.profiles.frames import AS_OF, CONFIG, TAXONOMY, days_ago, inputs_of


def interests(frame: pl.DataFrame, subject_id: int = 1) -> list[dict[str, object]]:
    return frame.filter(pl.col("subject_id") == subject_id).sort("rank").to_dicts()


def test_an_accumulator_decays_to_the_read_time_and_scores_by_saturation() -> None:
    # travel has a 30-day half-life; a purchase weighs 5 and the saturation is 5
    inputs = inputs_of([(1, "purchase", "web", AS_OF - timedelta(days=30), "travel", 12.0)])
    [now] = interests(top_interests(inputs, as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY).collect())
    assert now["raw"] == pytest.approx(2.5)
    assert now["score"] == pytest.approx(2.5 / 7.5)
    [later] = interests(
        top_interests(inputs, as_of=AS_OF + timedelta(days=30), config=CONFIG, taxonomy=TAXONOMY).collect()
    )
    assert later["raw"] == pytest.approx(1.25)
    assert later["score"] == pytest.approx(1.25 / 6.25)


def test_the_saturation_is_configuration() -> None:
    config = dataclasses.replace(CONFIG, interests=dataclasses.replace(CONFIG.interests, saturation=1.0))
    inputs = inputs_of([(1, "page_view", "web", AS_OF, "travel", None)], config=config)
    [interest] = interests(top_interests(inputs, as_of=AS_OF, config=config, taxonomy=TAXONOMY).collect())
    assert (interest["raw"], interest["score"]) == (pytest.approx(1.0), pytest.approx(0.5))


def test_a_read_before_the_last_event_does_not_grow_the_accumulator() -> None:
    inputs = inputs_of(
        [(1, "page_view", "web", days_ago(20), None, None), (1, "purchase", "web", AS_OF, "travel", 12.0)]
    )
    [early] = interests(
        top_interests(inputs, as_of=AS_OF - timedelta(days=10), config=CONFIG, taxonomy=TAXONOMY).collect()
    )
    assert early["raw"] == pytest.approx(5.0)


def test_a_parent_aggregates_its_children_and_is_an_entry_of_its_own() -> None:
    events = [
        (1, "page_view", "web", AS_OF, "sports/football", None),
        (1, "page_view", "web", AS_OF, "sports/basketball", None),
        (1, "page_view", "web", AS_OF, "sports/football;sports", None),  # named twice: counted once for sports
    ]
    found = interests(top_interests(inputs_of(events), as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY).collect())
    assert [(i["rank"], i["topic"], i["raw"]) for i in found] == [
        (1, "sports", pytest.approx(3.0)),
        (2, "sports/football", pytest.approx(2.0)),
        (3, "sports/basketball", pytest.approx(1.0)),
    ]
    assert [i["name"] for i in found] == ["Sports", "Football", "Basketball"]


def test_top_k_per_subject_with_ties_in_topic_order() -> None:
    config = dataclasses.replace(CONFIG, top_k=2)
    events = [
        (1, "page_view", "web", AS_OF, "travel", None),
        (1, "page_view", "web", AS_OF, "automotive", None),
        (1, "page_view", "web", AS_OF, "books-and-literature", None),
        (2, "purchase", "web", AS_OF, "automotive", 1.0),
    ]
    frame = top_interests(inputs_of(events), as_of=AS_OF, config=config, taxonomy=TAXONOMY).collect()
    assert frame.schema == INTEREST_SCHEMA
    assert [i["topic"] for i in interests(frame, 1)] == ["automotive", "books-and-literature"]
    assert [(i["rank"], i["topic"]) for i in interests(frame, 2)] == [(1, "automotive")]


@pytest.mark.parametrize("ulps", [-2, 2])
def test_scores_equal_but_for_a_floats_last_bits_still_rank_in_topic_order(ulps: int) -> None:
    """Two topics scored by the same events differ only by rounding error, whose sign changes with the
    read time: their order must not follow it (a partner saw two lookups a second apart disagree)."""
    events = [(1, "page_view", "web", AS_OF, "travel", None), (1, "page_view", "web", AS_OF, "automotive", None)]
    inputs = inputs_of(events)
    travel = pl.col("topic") == "travel"
    nudged = inputs.interests.with_columns(
        pl.when(travel).then(pl.col("score") * (1 + ulps * 2.0**-52)).otherwise(pl.col("score")).alias("score")
    )
    frame = top_interests(
        dataclasses.replace(inputs, interests=nudged), as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY
    ).collect()
    scores = {i["topic"]: i["score"] for i in interests(frame)}
    assert scores["travel"] != scores["automotive"]  # the nudge is there
    assert [i["topic"] for i in interests(frame)] == ["automotive", "travel"]


def test_each_interest_explains_itself() -> None:
    events = [
        (1, "page_view", "web", days_ago(3), "sports/football", None),
        (1, "page_view", "app", days_ago(2), "sports/football", None),
        (1, "click", "web", days_ago(1, hour=8), "sports/football", None),
    ]
    found = interests(top_interests(inputs_of(events), as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY).collect())
    football = next(i for i in found if i["topic"] == "sports/football")
    assert football["counts"] == [{"type": "click", "events": 1}, {"type": "page_view", "events": 2}]
    assert football["last_seen"] == days_ago(1, hour=8)
    assert football["half_life_days"] == 14.0
    expected = sum(
        weight * 2 ** (-(AS_OF - at).total_seconds() / 86_400 / 14)
        for weight, at in ((1.0, days_ago(3)), (1.0, days_ago(2)), (1.5, days_ago(1, hour=8)))
    )
    assert football["raw"] == pytest.approx(expected)
    assert football["score"] == pytest.approx(expected / (expected + 5.0))


def test_half_lives_come_from_the_configuration() -> None:
    config = dataclasses.replace(CONFIG, interests=InterestConfig.from_taxonomy(TAXONOMY, half_lives={"sports": 7.0}))
    inputs = inputs_of([(1, "page_view", "web", AS_OF - timedelta(days=7), "sports/football", None)], config=config)
    found = interests(top_interests(inputs, as_of=AS_OF, config=config, taxonomy=TAXONOMY).collect())
    assert [(i["topic"], i["half_life_days"], i["raw"]) for i in found] == [
        ("sports", 7.0, pytest.approx(0.5)),
        ("sports/football", 7.0, pytest.approx(0.5)),
    ]


def test_sensitive_topics_are_never_shown_nor_counted_into_their_parents() -> None:
    """A special category (GDPR Art. 9) must not leak through its parent's score either."""
    events = [
        (1, "purchase", "web", AS_OF, "healthy-living/weight-loss", 20.0),
        (1, "page_view", "web", AS_OF, "healthy-living/nutrition", None),
    ]
    found = interests(top_interests(inputs_of(events), as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY).collect())
    assert TAXONOMY.is_sensitive("healthy-living/weight-loss")
    assert not TAXONOMY.is_sensitive("healthy-living")
    by_topic = {i["topic"]: i for i in found}
    assert set(by_topic) == {"healthy-living", "healthy-living/nutrition"}
    assert by_topic["healthy-living"]["raw"] == pytest.approx(1.0)  # the view only, not the purchase's 5
    assert by_topic["healthy-living"]["counts"] == [{"type": "page_view", "events": 1}]


def test_a_bot_like_subject_shows_no_interests() -> None:
    config = dataclasses.replace(CONFIG, bot_events_per_day=10)
    events = [(1, "page_view", "web", days_ago(1, hour=1, minute=m), "travel", None) for m in range(11)]
    events += [(2, "page_view", "web", days_ago(1, hour=1, minute=m), "travel", None) for m in range(10)]
    frame = top_interests(inputs_of(events), as_of=AS_OF, config=config, taxonomy=TAXONOMY).collect()
    assert interests(frame, 1) == []
    assert [i["topic"] for i in interests(frame, 2)] == ["travel"]


def test_a_subject_without_an_event_up_to_the_as_of_day_shows_no_interests() -> None:
    inputs = inputs_of(
        [(1, "page_view", "web", AS_OF, "travel", None), (2, "page_view", "web", days_ago(3), "travel", None)]
    )
    frame = top_interests(inputs, as_of=days_ago(2), config=CONFIG, taxonomy=TAXONOMY).collect()
    assert frame["subject_id"].to_list() == [2]
