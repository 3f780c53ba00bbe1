"""A profile read by identifier, on both backends, from events stored through real ingestion.

The numbers are worked out by hand from the events below (as of ``NOW``, 2024-06-01 12:00 UTC);
the state they are computed from was folded in by ingestion itself.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from privacy.identifiers import IdentifierKind
from server.audit.service import page
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.profiles.build_runs import CutPoints, begin_run, finish_run
from server.profiles.features import LifecycleStage
from server.profiles.service import EventCount, Profile, WindowCounts, profile_of
from server.profiles.tiers import ValueTier
from server.runtime import Runtime
from server.taxonomy.taxonomy import taxonomy_for
from tests.ingest.batches import NOW, event, fixed_clock, ingest
from tests.profiles.consent_steps import record_profiling

ANA = "ana.profile@example.org"
PROFILING = ["analytics", "profiling"]
TODAY = NOW.replace(hour=0)


def day(days_ago: int, hour: int = 12) -> datetime:
    return TODAY - timedelta(days=days_ago) + timedelta(hours=hour)


def ana(**fields: Any) -> dict[str, Any]:
    return event(**{"email": ANA, "anonymous_id": "ana-phone", "consent_purposes": PROFILING, **fields})


def purchase(amount: float, **fields: Any) -> dict[str, Any]:
    return ana(event="purchase", amount=amount, currency="EUR", **fields)


ANA_EVENTS = [
    ana(timestamp=NOW - timedelta(hours=1), topics=["sports/football"]),
    ana(timestamp=day(6, hour=8), channel="app", topics=["sports/football"], anonymous_id="ana-tablet"),
    ana(event="click", timestamp=day(7, hour=23)),
    purchase(30.0, timestamp=day(29, hour=0), topics=["travel"]),
    purchase(20.0, timestamp=day(29, hour=18), channel="app"),
    purchase(50.0, timestamp=day(30), channel="offline"),
    purchase(100.0, timestamp=day(89)),
    ana(timestamp=day(90)),
    purchase(40.0, timestamp=day(120), channel="offline"),
]


def read(runtime: Runtime, email: str, *, now: datetime = NOW) -> Profile | None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return profile_of(
            unit,
            RawIdentifier(IdentifierKind.EMAIL, email),
            config=unit.profiles,
            taxonomy=taxonomy_for(runtime.settings.taxonomy_extra),
            now=now,
        )


def declare(runtime: Runtime, email: str, *, birth_year: int, region: str) -> None:
    records = pl.DataFrame([{"email": email, "birth_year": birth_year, "region": region}], schema=ATTRIBUTE_SCHEMA)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
    assert result.accepted == 1, result.rejected


def withdraw_profiling(runtime: Runtime, email: str) -> None:
    record_profiling(runtime, email, granted=False)


def record_build(runtime: Runtime, cut_points: CutPoints) -> None:
    """A build that ended with these cut points, recorded as the build records its runs."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        run = begin_run(unit.session, now=NOW, partitions=1, settings={})
        finish_run(unit.session, run.id, now=NOW, cut_points=cut_points)


def profile_reads(runtime: Runtime) -> list[tuple[str | None, dict[str, Any]]]:
    with runtime.sessions() as session:
        entries = page(session, after_seq=0, first=10_000)
    return [(entry.target, dict(entry.details)) for entry in entries if entry.action == "profile.read"]


def test_every_feature_of_a_hand_built_history(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    result = ingest(runtime, ANA_EVENTS)
    assert (result.accepted, result.rejected) == (len(ANA_EVENTS), [])
    declare(runtime, ANA, birth_year=1990, region="FR")

    profile = read(runtime, ANA)

    assert profile is not None
    assert profile.as_of == NOW
    assert (profile.days_since_last_event, profile.days_since_last_purchase) == (0, 29)
    assert profile.events == WindowCounts(last_7_days=2, last_30_days=5, last_90_days=7, lifetime=9)
    assert profile.active_days == WindowCounts(last_7_days=2, last_30_days=4, last_90_days=6, lifetime=8)
    assert profile.purchases == WindowCounts(last_7_days=0, last_30_days=2, last_90_days=4, lifetime=5)
    assert (profile.revenue_90_days, profile.average_order_value_90_days) == (200.0, 50.0)
    assert (profile.revenue_lifetime, profile.average_order_value_lifetime) == (240.0, 48.0)
    shares = {share.channel: share.share for share in profile.channel_mix}
    assert list(shares) == ["web", "app", "email", "ads", "offline", "partner"]
    assert shares == {
        "web": pytest.approx(5 / 9),
        "app": pytest.approx(2 / 9),
        "email": 0.0,
        "ads": 0.0,
        "offline": pytest.approx(2 / 9),
        "partner": 0.0,
    }
    assert (profile.device_count, profile.identifier_count) == (2, 3)  # two devices and the email
    assert profile.lifecycle_stage is LifecycleStage.ACTIVE
    assert profile.value_tier is None  # no build has taken cut points yet
    assert (profile.age_band, profile.region) == ("25-34", "FR")
    repeat = profile.repeat_purchases
    assert repeat is not None
    # purchase days 120 (40), 89 (100), 30 (50) and 29 (30 + 20) days ago
    assert (repeat.frequency, repeat.recency, repeat.t) == (3, 91, 120)
    assert repeat.monetary == pytest.approx(200 / 3)
    assert profile.bot_like is False

    def decayed(weight: float, at: datetime, half_life: float) -> float:
        return weight * 2 ** (-(NOW - at).total_seconds() / 86_400 / half_life)

    football = decayed(1.0, NOW - timedelta(hours=1), 14) + decayed(1.0, day(6, hour=8), 14)
    travel = decayed(5.0, day(29, hour=0), 30)
    assert [(i.topic, i.name) for i in profile.interests] == [
        ("travel", "Travel"),
        ("sports", "Sports"),
        ("sports/football", "Football"),
    ]
    by_topic = {interest.topic: interest for interest in profile.interests}
    for topic, raw in (("travel", travel), ("sports", football), ("sports/football", football)):
        assert by_topic[topic].raw == pytest.approx(raw, rel=1e-9)
        assert by_topic[topic].score == pytest.approx(raw / (raw + 5.0), rel=1e-9)
    assert by_topic["sports/football"].counts == (EventCount("page_view", 2),)
    assert by_topic["sports/football"].last_seen == NOW - timedelta(hours=1)
    assert by_topic["sports/football"].half_life_days == 14.0
    assert by_topic["travel"].counts == (EventCount("purchase", 1),)
    assert math.isclose(by_topic["travel"].half_life_days, 30.0)


def test_the_value_tier_uses_the_last_successful_builds_cut_points(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, ANA_EVENTS)
    record_build(runtime, CutPoints(high=500.0, low=100.0, buyers=2))
    first = read(runtime, ANA)
    assert first is not None
    assert first.value_tier is ValueTier.NORMAL
    record_build(runtime, CutPoints(high=240.0, low=100.0, buyers=2))
    second = read(runtime, ANA)
    assert second is not None
    assert second.value_tier is ValueTier.HIGH


def test_a_withdrawal_hides_the_profile_on_the_very_next_read(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, ANA_EVENTS[:3])
    assert read(runtime, ANA) is not None
    withdraw_profiling(runtime, ANA)
    assert read(runtime, ANA) is None


def test_unknown_non_consenting_and_stateless_people_get_the_same_answer_and_every_read_is_audited(
    runtime: Runtime,
) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, ANA_EVENTS[:2])
    ingest(runtime, [event(email="no.profiling@example.org", consent_purposes=["analytics"])])
    record_profiling(runtime, "no.events@example.org", granted=True)  # consent to profiling, but never an event

    answers = [
        read(runtime, email)
        for email in ("nobody.known@example.org", "no.profiling@example.org", "no.events@example.org", "not an email")
    ]
    shown = read(runtime, f"  {ANA.upper()} ")  # any spelling of the address finds the same person

    assert answers == [None, None, None, None]
    assert shown is not None
    reads = profile_reads(runtime)
    assert [details for _target, details in reads] == [{"shown": False}] * 4 + [{"shown": True}]
    targets = [target for target, _details in reads]
    assert [target is None for target in targets] == [True, False, False, True, False]  # no match: no target
    assert all(target.startswith("subject:") for target in targets if target is not None)
    assert "example.org" not in repr(reads)
