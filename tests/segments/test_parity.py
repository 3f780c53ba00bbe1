"""Real time and batch agree: random rules over random people and event streams, evaluated after
every ingest batch for the subjects it touched, leave exactly the members one batch evaluation of
everything finds at the end (that evaluation changes nothing), on SQLite and PostgreSQL.

The clock is frozen, so both read the same moment; rules are drawn by ``rules()`` over the topics
the streams name (a sensitive one among them), and the second segment may name the first.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.runtime import Runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import evaluate_population
from server.segments.rules import Rule
from tests.ingest.batches import NOW, event, fixed_clock, ingest
from tests.segments.rule_strategies import rules
from tests.segments.segment_steps import add_segment, members, segment

TYPES = ["page_view", "click", "purchase", "add_to_cart", "email_open"]
CHANNELS = ["web", "app", "email"]
TOPIC_LISTS = [None, ["sports"], ["sports/football"], ["travel", "sports/tennis"], ["healthy-living/weight-loss"]]
TOPICS = ("sports", "sports/football", "travel", "healthy-living/weight-loss")
CONSENTS = [["analytics", "profiling"], ["analytics", "profiling"], ["analytics"]]
_examples = itertools.count()


@st.composite
def streams(draw: st.DrawFn, example: int) -> list[list[dict[str, Any]]]:
    people = draw(st.integers(min_value=1, max_value=5))
    records: list[dict[str, Any]] = []
    for number in range(draw(st.integers(min_value=1, max_value=20))):
        person = draw(st.integers(min_value=0, max_value=people - 1))
        kind = draw(st.sampled_from(TYPES))
        record = event(
            message_id=f"x{example}-m{number}",
            event=kind,
            channel=draw(st.sampled_from(CHANNELS)),
            timestamp=NOW - timedelta(minutes=draw(st.integers(min_value=1, max_value=120 * 24 * 60))),
            topics=draw(st.sampled_from(TOPIC_LISTS)),
            consent_purposes=draw(st.sampled_from(CONSENTS)),
            email=f"p{person}.x{example}@example.org",
        )
        if draw(st.booleans()):  # sometimes another person's device: a merge
            record["anonymous_id"] = f"device-{draw(st.integers(0, people - 1))}-x{example}"
        if kind == "purchase":
            record |= {"amount": draw(st.sampled_from([5.0, 40.0])), "currency": "EUR"}
        records.append(record)
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=len(records)), max_size=3, unique=True)))
    return [records[start:end] for start, end in itertools.pairwise([0, *cuts, len(records)]) if start < end]


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, Rule, Rule, list[list[dict[str, Any]]]]:
    example = next(_examples)
    first = draw(rules(TOPICS, max_leaves=5))
    second = draw(rules(TOPICS, (f"x{example}-first",), max_leaves=5))
    return example, first, second, draw(streams(example))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_real_time_after_each_batch_equals_one_batch_at_the_end(
    runtime: Runtime, case: tuple[int, Rule, Rule, list[list[dict[str, Any]]]]
) -> None:
    example, first, second, batches = case
    runtime = fixed_clock(runtime)
    ids = [add_segment(runtime, f"x{example}-first", first), add_segment(runtime, f"x{example}-second", second)]
    evaluate_population(runtime, only=ids)
    for batch in batches:
        ingest(runtime, batch)
        drain_marks(runtime)
    in_real_time = [members(runtime, segment_id) for segment_id in ids]
    counted = [segment(runtime, segment_id).member_count for segment_id in ids]
    run = evaluate_population(runtime, only=ids)
    assert run.failed == {}
    assert [members(runtime, segment_id) for segment_id in ids] == in_real_time
    assert run.changes == 0
    assert counted == [len(found) for found in in_real_time]
