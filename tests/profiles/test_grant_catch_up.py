"""A ``profiling`` grant that comes without an event to fold gives the person their state at once
(found by the parity property: before, the state waited for their next event or the next build)."""

from __future__ import annotations

from datetime import timedelta

from privacy.identifiers import IdentifierKind
from server.runtime import Runtime
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_profiling
from tests.profiles.state_checks import assert_state_follows_events

EMAIL = "late.grant@example.org"


def test_a_grant_on_a_refused_record_catches_the_state_up(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    earlier = NOW - timedelta(days=12)
    assert ingest(runtime, [event(email=EMAIL, event="email_open", channel="email", timestamp=earlier)]).accepted == 1
    # An ad impression needs advertising: the record is refused, its statement (profiling) is kept.
    refused = ingest(runtime, [event(email=EMAIL, event="ad_impression", consent_purposes=["analytics", "profiling"])])
    assert refused.accepted == 0
    assert_state_follows_events(runtime)


def test_a_grant_through_the_consent_api_catches_the_state_up(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    assert ingest(runtime, [event(email=EMAIL, event="page_view")]).accepted == 1
    assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is not None
    record_profiling(runtime, EMAIL, granted=True)
    assert_state_follows_events(runtime)
