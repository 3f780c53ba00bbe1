"""Real time and batch agree: random event streams folded batch by batch give the state the batch
build computes from the stored events, on SQLite and PostgreSQL.

Streams are drawn by hypothesis: people named by an email and a device, events out of order over
200 days, purchases with amounts, topics with their parents and a sensitive one, resends of the
same message, records that link two people (merges) and consent that comes and goes. After every
stream the stored state must equal the state of the stored events (``state_checks``); then a
build recomputes everything and must leave the same state. Interest scores are compared to a
relative 1e-9, everything else exactly.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.profiles.build import run_build
from server.runtime import Runtime
from tests.ingest.batches import NOW, event, fixed_clock, ingest
from tests.profiles.state_checks import assert_state_follows_events, stored_and_expected
from tests.profiles.states import assert_same_state

TYPES = ["page_view", "click", "purchase", "add_to_cart", "ad_impression", "email_open"]
CHANNELS = ["web", "app", "email", "offline"]
TOPICS = [
    None,
    ["sports"],
    ["sports/football"],
    ["sports/football", "sports"],
    ["travel", "sports/tennis"],
    ["healthy-living/weight-loss"],
]
CONSENTS = [["analytics", "profiling"], ["analytics", "profiling"], ["analytics"], None]
_streams = itertools.count()


@st.composite
def streams(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches of records of up to four people; each stream has its own people and message ids."""
    stream = next(_streams)
    people = draw(st.integers(min_value=1, max_value=4))
    records: list[dict[str, Any]] = []
    for number in range(draw(st.integers(min_value=1, max_value=25))):
        person = draw(st.integers(min_value=0, max_value=people - 1))
        kind = draw(st.sampled_from(TYPES))
        record: dict[str, Any] = event(
            message_id=f"s{stream}-m{number}",
            event=kind,
            channel=draw(st.sampled_from(CHANNELS)),
            timestamp=NOW - timedelta(minutes=draw(st.integers(min_value=1, max_value=200 * 24 * 60))),
            topics=draw(st.sampled_from(TOPICS)),
            consent_purposes=draw(st.sampled_from(CONSENTS)),
        )
        link = draw(st.integers(min_value=0, max_value=people - 1)) if draw(st.booleans()) else person
        record["email"] = f"p{person}.s{stream}@example.org"
        record["anonymous_id"] = f"device-{link}-s{stream}"  # another person's device merges the two
        if kind == "purchase":
            record |= {"amount": draw(st.sampled_from([5.0, 12.5, 99.99])), "currency": "EUR"}
        records.append(record)
    resent = draw(st.lists(st.integers(min_value=0, max_value=len(records) - 1), max_size=4))
    records += [dict(records[index]) for index in resent]  # the same message again: a duplicate
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=len(records)), max_size=4, unique=True)))
    return [records[start:end] for start, end in itertools.pairwise([0, *cuts, len(records)]) if start < end]


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=streams())
def test_real_time_and_batch_give_the_same_state(runtime: Runtime, batches: list[list[dict[str, Any]]]) -> None:
    runtime = fixed_clock(runtime)
    for batch in batches:
        ingest(runtime, batch)
    assert_state_follows_events(runtime, anyone=False)  # a stream may hold no profiling consent
    folded, _expected = stored_and_expected(runtime)

    run = run_build(runtime, partitions=3)
    assert run.status == "succeeded", run.error_code
    built, expected = stored_and_expected(runtime)
    assert_same_state(built, expected)
    assert_same_state(built, folded)
