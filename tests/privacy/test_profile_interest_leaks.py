"""What a profile read could give away through its interests, probed through real ingestion and a
real build on both backends.

- A sensitive topic (GDPR Art. 9) must not show, directly or through anything computed from it:
  a parent's score or explanation, the number of interests shown (a hidden topic taking a top-k
  slot would leave a visible gap), their order.
- A bot-like subject shows no interests at all.
- Someone else's statement cannot give a person a profile: a partner speaks only for sharing
  with itself, whatever purposes its events list.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier
from server.partners.service import create_partner
from server.profiles.build import run_build
from server.profiles.build_runs import BuildStatus
from server.profiles.config import profile_config
from server.profiles.service import Profile, profile_of
from server.runtime import Runtime
from server.storage.tables import ProfileSummaryRow
from server.taxonomy.taxonomy import taxonomy_for
from tests.ingest.batches import NOW, count, event, fixed_clock, ingest

CAROL = "carol.interests@example.org"
PROFILING = ["analytics", "profiling"]
CANCER = "medical-health/diseases-and-conditions/cancer"
WEIGHT_LOSS = "healthy-living/weight-loss"
NUTRITION = "healthy-living/nutrition"


def configured(runtime: Runtime, **settings: Any) -> Runtime:
    changed = runtime.settings.model_copy(update=settings)
    profiles = profile_config(changed, taxonomy_for(changed.taxonomy_extra))
    return fixed_clock(dataclasses.replace(runtime, settings=changed, profiles=profiles))


def carol(*topics: str, kind: str = "page_view", minutes_ago: int = 1, **fields: Any) -> dict[str, Any]:
    extra = {"amount": 10.0, "currency": "EUR"} if kind == "purchase" else {}
    return event(
        email=CAROL,
        event=kind,
        topics=list(topics),
        consent_purposes=PROFILING,
        timestamp=NOW - timedelta(minutes=minutes_ago),
        **extra,
        **fields,
    )


def read(runtime: Runtime, email: str = CAROL) -> Profile | None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return profile_of(
            unit,
            RawIdentifier(IdentifierKind.EMAIL, email),
            config=unit.profiles,
            taxonomy=taxonomy_for(runtime.settings.taxonomy_extra),
            now=NOW,
        )


def test_sensitive_topics_leave_no_trace_in_scores_explanations_or_top_k(runtime: Runtime) -> None:
    """Carol's strongest interests are a disease and weight loss; one page view names weight loss
    beside nutrition, one names travel. With two interests shown, she shows healthy living and
    nutrition, each worth that one page view, as if the sensitive events had never been sent."""
    runtime = configured(runtime, interest_top_k=2)
    batch = [
        *(carol(CANCER, kind="purchase", minutes_ago=m) for m in range(1, 6)),
        *(carol(WEIGHT_LOSS, kind="purchase", minutes_ago=m) for m in range(1, 4)),
        carol(WEIGHT_LOSS, NUTRITION),
        carol("travel"),
    ]
    assert ingest(runtime, batch).accepted == len(batch)

    for moment in ("real time", "after a build"):
        if moment == "after a build":
            assert run_build(runtime, partitions=1).status is BuildStatus.SUCCEEDED
        profile = read(runtime)
        assert profile is not None
        shown = [interest.topic for interest in profile.interests]
        assert shown == ["healthy-living", NUTRITION], moment
        parent, child = profile.interests
        assert parent.raw == pytest.approx(child.raw, rel=1e-12), "the parent holds only what nutrition holds"
        assert [(c.type, c.events) for c in parent.counts] == [("page_view", 1)], moment
        assert [(c.type, c.events) for c in child.counts] == [("page_view", 1)], moment
        assert parent.last_seen == child.last_seen == NOW - timedelta(minutes=1)
        assert profile.purchases.lifetime == 8, "the purchases themselves are behaviour, and count"


def test_a_bot_like_subject_shows_no_interest_in_real_time_or_after_a_build(runtime: Runtime) -> None:
    runtime = configured(runtime, bot_events_per_day=3)
    batch = [carol("travel", minutes_ago=m) for m in range(1, 5)]
    assert ingest(runtime, batch).accepted == 4
    assert ingest(runtime, [event(email="dan@example.org", consent_purposes=PROFILING, topics=["travel"])]).accepted
    for moment in ("real time", "after a build"):
        if moment == "after a build":
            assert run_build(runtime, partitions=1).status is BuildStatus.SUCCEEDED
        bot, person = read(runtime), read(runtime, "dan@example.org")
        assert bot is not None
        assert person is not None
        assert (bot.bot_like, bot.interests) == (True, ()), moment
        assert [i.topic for i in person.interests] == ["travel"], "the rule must not hide everyone"


def test_a_partners_event_listing_profiling_gives_nobody_a_profile(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        create_partner(unit.session, name="acme", purposes=[Purpose.ANALYTICS, Purpose.PROFILING], now=NOW)
    sent = event(partner="acme", email=CAROL, consent_purposes=PROFILING, topics=["travel"])
    assert ingest(runtime, [sent]).accepted == 1
    assert read(runtime) is None
    assert count(runtime, ProfileSummaryRow) == 0
    assert run_build(runtime, partitions=1).status is BuildStatus.SUCCEEDED
    assert count(runtime, ProfileSummaryRow) == 0
