"""Behavioural features of many subjects at once, from hand-built events, to the exact number."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from server.profiles.config import LifecycleRules
from server.profiles.features import FEATURE_SCHEMA, features
from server.profiles.tiers import CutPoints
from tests.profiles.frames import AS_OF, CONFIG, Event, days_ago, inputs_of


def by_subject(frame: pl.DataFrame) -> dict[int, dict[str, object]]:
    return {row["subject_id"]: row for row in frame.to_dicts()}


def test_windows_are_utc_days_ending_on_the_as_of_day_inclusive() -> None:
    events = [
        (1, "page_view", "web", days_ago(0, hour=23), None, None),  # later on the as-of day: the day counts whole
        (1, "page_view", "web", days_ago(6, hour=0), None, None),  # first second of the 7th day: in 7 days
        (1, "page_view", "web", days_ago(7, hour=23, minute=59, second=59), None, None),  # 8th day: out
        (1, "page_view", "web", days_ago(29, hour=0), None, None),
        (1, "page_view", "web", days_ago(30, hour=23, minute=59), None, None),
        (1, "page_view", "web", days_ago(89, hour=0), None, None),
        (1, "page_view", "web", days_ago(90, hour=23), None, None),
        (1, "page_view", "web", days_ago(-1, hour=0), None, None),  # the day after: never counted
    ]
    frame = features(inputs_of(events), as_of=AS_OF, config=CONFIG, cut_points=None).collect()
    assert frame.schema == FEATURE_SCHEMA
    row = frame.row(0, named=True)
    assert (row["events_7d"], row["events_30d"], row["events_90d"], row["events_lifetime"]) == (2, 4, 6, 7)
    assert (row["active_days_7d"], row["active_days_30d"], row["active_days_90d"]) == (2, 4, 6)
    assert row["days_since_last_event"] == 0


def test_a_past_as_of_counts_nothing_after_its_day() -> None:
    as_of = days_ago(10)
    events = [
        (1, "purchase", "web", days_ago(12), None, 10.0),
        (1, "page_view", "web", days_ago(10, hour=23), None, None),
        (1, "purchase", "web", days_ago(5), None, 99.0),
        (2, "page_view", "web", days_ago(3), None, None),  # nothing up to as_of: no profile then
    ]
    rows = by_subject(features(inputs_of(events), as_of=as_of, config=CONFIG, cut_points=None).collect())
    assert set(rows) == {1}
    assert rows[1]["events_lifetime"] == 2
    assert rows[1]["purchases_lifetime"] == 1
    assert rows[1]["revenue_lifetime"] == 10.0
    assert rows[1]["days_since_last_event"] == 0
    assert rows[1]["days_since_last_purchase"] == 2


@pytest.mark.parametrize(
    ("first", "last", "stage"),
    [
        (13, 13, "new"),
        (14, 14, "active"),
        (100, 29, "active"),
        (100, 30, "at_risk"),
        (100, 89, "at_risk"),
        (100, 90, "churned"),
        (300, 200, "churned"),
    ],
)
def test_lifecycle_thresholds_with_the_defaults(first: int, last: int, stage: str) -> None:
    events = [(7, "page_view", "web", days_ago(first), None, None), (7, "click", "app", days_ago(last), None, None)]
    row = features(inputs_of(events), as_of=AS_OF, config=CONFIG, cut_points=None).collect().row(0, named=True)
    assert row["lifecycle"] == stage


def test_lifecycle_thresholds_come_from_the_configuration_for_many_subjects_at_once() -> None:
    config = dataclasses.replace(CONFIG, lifecycle=LifecycleRules(new_days=3, active_days=5, churn_days=10))
    events = [
        (1, "page_view", "web", days_ago(2), None, None),  # first seen in the last 3 days
        (2, "page_view", "web", days_ago(50), None, None),
        (2, "page_view", "web", days_ago(4), None, None),
        (3, "page_view", "web", days_ago(50), None, None),
        (3, "page_view", "web", days_ago(5), None, None),
        (4, "page_view", "web", days_ago(50), None, None),
        (4, "page_view", "web", days_ago(10), None, None),
    ]
    rows = by_subject(features(inputs_of(events, config=config), as_of=AS_OF, config=config, cut_points=None).collect())
    assert {s: r["lifecycle"] for s, r in rows.items()} == {1: "new", 2: "active", 3: "at_risk", 4: "churned"}


def test_recency_frequency_monetary_and_channel_mix() -> None:
    events = [
        (1, "purchase", "web", days_ago(0, hour=9), None, 10.0),
        (1, "purchase", "app", days_ago(0, hour=10), None, 30.0),
        (1, "page_view", "ads", days_ago(1), None, None),
        (1, "purchase", "email", days_ago(95), None, 60.0),
        (2, "page_view", "web", days_ago(3), None, 5.0),  # an amount on a non-purchase is not revenue
        (2, "page_view", "web", days_ago(3, hour=13), None, None),
    ]
    rows = by_subject(features(inputs_of(events), as_of=AS_OF, config=CONFIG, cut_points=None).collect())
    buyer, browser = rows[1], rows[2]
    assert buyer["days_since_last_purchase"] == 0
    assert (buyer["purchases_7d"], buyer["purchases_90d"], buyer["purchases_lifetime"]) == (2, 2, 3)
    assert (buyer["revenue_90d"], buyer["aov_90d"]) == (40.0, 20.0)
    assert buyer["revenue_lifetime"] == 100.0
    assert buyer["aov_lifetime"] == pytest.approx(100.0 / 3)
    shares = {c: buyer[f"channel_share_{c}"] for c in ("web", "app", "email", "ads", "offline", "partner")}
    assert shares == {"web": 0.25, "app": 0.25, "email": 0.25, "ads": 0.25, "offline": 0.0, "partner": 0.0}
    assert browser["days_since_last_event"] == 3
    assert browser["days_since_last_purchase"] is None
    assert (browser["purchases_lifetime"], browser["revenue_lifetime"], browser["revenue_90d"]) == (0, 0.0, 0.0)
    assert browser["aov_90d"] is None
    assert browser["aov_lifetime"] is None
    assert browser["channel_share_web"] == 1.0
    assert browser["active_days_lifetime"] == 1


CUTS = CutPoints(high=100.0, low=20.0, buyers=4)


def test_value_tier_against_the_cut_points_and_none_before_any() -> None:
    revenue = {1: 100.0, 2: 99.99, 3: 20.0, 4: 19.99}
    events: list[Event] = [(s, "purchase", "web", days_ago(1), None, amount) for s, amount in revenue.items()]
    events.append((5, "page_view", "web", days_ago(1), None, None))
    inputs = inputs_of(events)
    cut = by_subject(features(inputs, as_of=AS_OF, config=CONFIG, cut_points=CUTS).collect())
    assert {s: r["value_tier"] for s, r in cut.items()} == {1: "high", 2: "normal", 3: "normal", 4: "low", 5: "low"}
    uncut = by_subject(features(inputs, as_of=AS_OF, config=CONFIG, cut_points=None).collect())
    assert {r["value_tier"] for r in uncut.values()} == {None}


def test_devices_and_identifiers_count_our_own_links_only_and_traits_are_the_bands() -> None:
    events = [(1, "page_view", "web", days_ago(1), None, None), (2, "page_view", "web", days_ago(1), None, None)]
    identities = [
        (1, "device_id", None),
        (1, "device_id", None),
        (1, "email", None),
        (1, "device_id", 7),  # a partner's link: its own, not ours
        (1, "partner_user_id", 7),
    ]
    inputs = inputs_of(events, identities=identities, traits=[(1, "25-34", "FR-IDF")])
    rows = by_subject(features(inputs, as_of=AS_OF, config=CONFIG, cut_points=None).collect())
    assert (rows[1]["device_count"], rows[1]["identifier_count"]) == (2, 3)
    assert (rows[2]["device_count"], rows[2]["identifier_count"]) == (0, 0)
    assert (rows[1]["age_band"], rows[1]["region"]) == ("25-34", "FR-IDF")
    assert (rows[2]["age_band"], rows[2]["region"]) == (None, None)


def test_more_events_than_the_threshold_on_one_day_flags_a_bot() -> None:
    config = dataclasses.replace(CONFIG, bot_events_per_day=3)
    events = [
        # four events on one day, over two types and two channels
        (1, "page_view", "web", days_ago(2, hour=1), None, None),
        (1, "page_view", "web", days_ago(2, hour=2), None, None),
        (1, "click", "web", days_ago(2, hour=3), None, None),
        (1, "page_view", "app", days_ago(2, hour=4), None, None),
        # three a day on two days: at the threshold, not above it
        *[(2, "page_view", "web", days_ago(day, hour=h), None, None) for day in (1, 2) for h in (1, 2, 3)],
    ]
    rows = by_subject(features(inputs_of(events), as_of=AS_OF, config=config, cut_points=None).collect())
    assert (rows[1]["bot_like"], rows[2]["bot_like"]) == (True, False)
