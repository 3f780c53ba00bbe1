"""Each node of a rule, compiled and run over a rule frame of people whose answers are worked out
by hand: three people with known events, traits and interests, as of one moment."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from server.frames.profiles import STATE_EVENT_SCHEMA
from server.frames.subjects import IDENTITY_SCHEMA, TRAIT_SCHEMA
from server.profiles.config import InterestConfig, ProfileConfig
from server.profiles.features import FeatureInputs, top_interests
from server.profiles.state import state_of
from server.segments.buckets import bucket_expr, salt_key, splitmix64
from server.segments.compile import RuleNotEvaluable, compile_rule
from server.segments.rule_frame import needs_of, rule_frame, segment_column
from server.segments.rules import (
    All,
    Any,
    Between,
    Compare,
    CompareOp,
    DateRange,
    EventWindow,
    Exists,
    InSegment,
    InterestScore,
    LastDays,
    Not,
    OneOf,
    RandomBucket,
    Rule,
)
from server.taxonomy.taxonomy import load_taxonomy

AS_OF = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
ANA, BOB, BOT = 11, 22, 33
TAXONOMY = load_taxonomy()
CONFIG = ProfileConfig(interests=InterestConfig.from_taxonomy(TAXONOMY), bot_events_per_day=50)


def _at(days_ago: int, hour: int = 9) -> datetime:
    return (AS_OF - timedelta(days=days_ago)).replace(hour=hour)


def _inputs() -> FeatureInputs:
    rows = [
        # Ana: two purchases on the web (today and 29 days ago: the edge of 30), sports interest.
        (ANA, "purchase", "web", _at(0), "sports/football", 20.0),
        (ANA, "purchase", "web", _at(29), None, 10.0),
        (ANA, "page_view", "app", _at(30), "travel", None),  # just outside the last 30 days
        # Bob: one page view 3 days ago, on the app, naming a sensitive topic only.
        (BOB, "page_view", "app", _at(3), "healthy-living/weight-loss", None),
        # A bot: 60 views in one day (more than 50), all on sports.
        *[(BOT, "page_view", "web", _at(1), "sports", None) for _ in range(60)],
    ]
    events = pl.DataFrame(rows, schema=STATE_EVENT_SCHEMA, orient="row")
    state = state_of(events.lazy(), CONFIG.interests)
    traits = pl.DataFrame([(ANA, "25-34", "FR"), (BOB, None, "DE")], schema=TRAIT_SCHEMA, orient="row")
    identities = pl.DataFrame([(ANA, "email", None), (ANA, "device_id", None)], schema=IDENTITY_SCHEMA, orient="row")
    return FeatureInputs.of(state, traits=traits, identities=identities)


def members(rule: Rule, extra: dict[str, list[bool]] | None = None) -> set[int]:
    frame = rule_frame(
        _inputs(), needs_of([rule]), as_of=AS_OF, config=CONFIG, cut_points=None, taxonomy=TAXONOMY
    ).collect()
    frame = frame.sort("subject_id").with_columns(
        pl.Series(segment_column(name), values) for name, values in (extra or {}).items()
    )
    return set(frame.filter(compile_rule(rule))["subject_id"].to_list())


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Compare("purchases_30d", CompareOp.EQ, 2), {ANA}),
        (Compare("purchases_30d", CompareOp.GE, 1), {ANA}),
        (Compare("events_lifetime", CompareOp.GT, 3), {BOT}),
        (Compare("region", CompareOp.NE, "FR"), {BOB}),  # the bot has no region: null is false
        (Not(Compare("region", CompareOp.EQ, "FR")), {BOB, BOT}),  # ... and its negation true
        (Compare("days_since_last_purchase", CompareOp.LE, 0), {ANA}),
        (Between("days_since_last_event", 1, 3), {BOB, BOT}),
        (OneOf("age_band", ("25-34", "65+")), {ANA}),
        (OneOf("identifier_count", (2, 7)), {ANA}),
        (Exists("days_since_last_purchase"), {ANA}),
        (Not(Exists("age_band")), {BOB, BOT}),
        (Compare("bot_like", CompareOp.EQ, True), {BOT}),
        (All((Exists("region"), Compare("events_7d", CompareOp.GE, 1))), {ANA, BOB}),
        (Any((Compare("region", CompareOp.EQ, "DE"), Compare("device_count", CompareOp.GE, 1))), {ANA, BOB}),
        # Events in windows: the last 30 days are days 0..29 ago; the view 30 days ago is out.
        (EventWindow("purchase", LastDays(30), at_least=2), {ANA}),
        (EventWindow("purchase", LastDays(29), at_least=2), set()),
        (EventWindow("page_view", LastDays(30), at_least=1, channel="app"), {BOB}),
        (EventWindow("page_view", LastDays(31), at_least=1, channel="app"), {ANA, BOB}),
        (EventWindow("page_view", LastDays(7), at_most=0), {ANA}),
        (EventWindow("page_view", LastDays(7), at_least=1, at_most=59), {BOB}),
        (EventWindow("purchase", DateRange(date(2024, 5, 12), date(2024, 5, 12)), at_least=1), {ANA}),
        (EventWindow("purchase", DateRange(date(2024, 5, 13), date(2024, 6, 9)), at_least=1), set()),
        # Interests: a parent counts its child; the bot has none; a sensitive topic scores for no one.
        (InterestScore("sports", 0.45), {ANA}),  # one purchase (weight 5) of three hours: about 0.4999
        (InterestScore("sports", 0.0), {ANA, BOB}),  # no interest is a score of 0; the bot has none
        (Not(InterestScore("sports", 0.0)), {BOT}),
        (InterestScore("sports/football", 0.1, top=1), set()),  # ranked below its parent "sports"
        (InterestScore("sports", 0.1, top=1), {ANA}),
        (InterestScore("healthy-living/weight-loss", 0.0), set()),
        (InterestScore("no-such-topic", 0.0), set()),
        (InSegment("vip"), {BOB}),
        (Not(InSegment("vip")), {ANA, BOT}),
    ],
)
def test_each_node_answers_as_worked_out_by_hand(rule: Rule, expected: set[int]) -> None:
    assert members(rule, {"vip": [False, True, False]}) == expected


def test_scores_are_the_ones_a_profile_shows() -> None:
    shown = top_interests(_inputs(), as_of=AS_OF, config=CONFIG, taxonomy=TAXONOMY).collect()
    sports = shown.filter((pl.col("subject_id") == ANA) & (pl.col("topic") == "sports"))["score"].item()
    assert members(InterestScore("sports", sports)) == {ANA}
    assert members(InterestScore("sports", min(1.0, sports + 1e-9))) == set()


def test_a_feature_the_catalogue_does_not_hold_is_not_evaluable() -> None:
    with pytest.raises(RuleNotEvaluable):
        compile_rule(Compare("shoe_size", CompareOp.GT, 3))
    with pytest.raises(RuleNotEvaluable):
        compile_rule(Compare("region", CompareOp.GT, "FR"))


def test_buckets_are_splitmix64_of_the_id_and_salt_on_any_machine() -> None:
    ids = [0, 1, -1, 2**63 - 1, -(2**63), *(random.Random(7).randrange(-(2**63), 2**63) for _ in range(200))]
    got = pl.DataFrame({"id": ids}).select(bucket_expr(pl.col("id"), "holdout", 97))["id"].to_list()
    key = salt_key("holdout")
    assert got == [splitmix64((i & (2**64 - 1)) ^ key) % 97 for i in ids]
    assert splitmix64(0) == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0


def test_buckets_are_uniform_and_independent_across_salts() -> None:
    ids = pl.Series("id", random.Random(3).sample(range(2**40), 100_000), dtype=pl.Int64)
    frame = pl.DataFrame(ids).select(a=bucket_expr(pl.col("id"), "one", 10), b=bucket_expr(pl.col("id"), "two", 10))
    shares = (frame["a"].value_counts()["count"] / frame.height).to_list()
    assert min(shares) > 0.09
    assert max(shares) < 0.11
    both = frame.filter((pl.col("a") == 0) & (pl.col("b") == 0)).height / frame.height
    assert 0.008 < both < 0.012  # about 1/10 of 1/10: one salt says nothing of the other


def test_a_bucket_range_includes_its_lower_end_and_excludes_its_upper() -> None:
    rule = RandomBucket("holdout", 100, 10, 20)
    frame = pl.DataFrame({"subject_id": [ANA, BOB, BOT]}).with_columns(
        bucket_expr(pl.col("subject_id"), "holdout", 100).alias("bucket:100:holdout")
    )
    inside = frame.filter(compile_rule(rule))["subject_id"].to_list()
    buckets = dict(zip(frame["subject_id"], frame["bucket:100:holdout"], strict=True))
    assert inside == [s for s in (ANA, BOB, BOT) if 10 <= buckets[s] < 20]
