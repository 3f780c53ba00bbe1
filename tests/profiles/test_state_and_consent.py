"""Profile state exists only under `profiling` consent, and is never built on a partial history.

Through real ingestion and the consent service, on both backends: a withdrawal drops the state in
its own transaction; a later grant (through an event or the consent API) and new events give the
state of every stored event, not only of those after the grant.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from privacy.identifiers import IdentifierKind
from server.runtime import Runtime
from server.storage.tables import ProfileDailyRow, ProfileInterestRow, ProfileSummaryRow
from tests.ingest.batches import NOW, count, event, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_profiling
from tests.profiles.state_checks import assert_state_follows_events

BEA = "bea.state@example.org"


def bea(minutes_ago: int, purposes: list[str], **fields: Any) -> dict[str, Any]:
    return event(
        email=BEA,
        timestamp=NOW - timedelta(minutes=minutes_ago),
        consent_purposes=purposes,
        topics=["sports/football"],
        **fields,
    )


def state_rows(runtime: Runtime, subject_id: int) -> int:
    return sum(
        count(runtime, model, model.subject_id == subject_id)
        for model in (ProfileDailyRow, ProfileSummaryRow, ProfileInterestRow)
    )


def profiling(runtime: Runtime, *, granted: bool) -> None:
    record_profiling(runtime, BEA, granted=granted)


def test_without_profiling_consent_no_state_is_kept(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [bea(50, ["analytics"]), bea(40, ["analytics"])])
    subject = subject_of(runtime, IdentifierKind.EMAIL, BEA)
    assert subject is not None
    assert state_rows(runtime, subject) == 0


def test_a_withdrawal_through_the_api_drops_the_state_at_once(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [bea(50, ["analytics", "profiling"]), bea(40, ["analytics", "profiling"])])
    subject = subject_of(runtime, IdentifierKind.EMAIL, BEA)
    assert subject is not None
    assert state_rows(runtime, subject) > 0
    profiling(runtime, granted=False)
    assert state_rows(runtime, subject) == 0


def test_a_withdrawal_in_an_event_drops_the_state_and_later_events_are_not_folded(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [bea(50, ["analytics", "profiling"])])
    ingest(runtime, [bea(40, ["analytics"])])  # profiling no longer listed: withdrawn
    subject = subject_of(runtime, IdentifierKind.EMAIL, BEA)
    assert subject is not None
    assert state_rows(runtime, subject) == 0
    ingest(runtime, [event(email=BEA, timestamp=NOW - timedelta(minutes=30), consent_purposes=None)])
    assert state_rows(runtime, subject) == 0


def test_granting_again_gives_the_state_of_every_stored_event(runtime: Runtime) -> None:
    """Folding only what arrives after the grant would leave the events of the withdrawn time out."""
    runtime = fixed_clock(runtime)
    ingest(runtime, [bea(50, ["analytics", "profiling"])])
    profiling(runtime, granted=False)
    ingest(runtime, [bea(40, ["analytics"]), bea(35, ["analytics"], event="purchase", amount=12.5, currency="EUR")])
    profiling(runtime, granted=True)
    ingest(runtime, [bea(20, ["analytics", "profiling"])])
    subject = subject_of(runtime, IdentifierKind.EMAIL, BEA)
    assert subject is not None
    assert count(runtime, ProfileDailyRow, ProfileDailyRow.subject_id == subject) > 0
    assert_state_follows_events(runtime)
