"""Batches stored together in one pass answer exactly as if each had been stored alone."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select

from server.auth.principal import SYSTEM_ACTOR, Role
from server.ingest.group_commit import GroupCommitter, GroupKey
from server.ingest.service import CheckedEvents, IngestResult, check_events, ingest_together
from server.ingest.setup import guardrails_from, validation_context
from server.ingest.vocabulary import RejectCode
from server.runtime import Runtime
from server.storage.tables import EventRow
from tests.http.test_ingest_api import INGEST
from tests.http.test_ingest_api import event as segment_event
from tests.ingest.batches import SOURCE, event, fixed_clock, footprint, frame
from tests.support.live_server import LiveServer


@pytest.fixture
def clocked(runtime: Runtime) -> Runtime:
    return fixed_clock(runtime)


def checked(runtime: Runtime, records: list[dict[str, Any]]) -> CheckedEvents:
    with runtime.sessions() as session:
        context = validation_context(session, runtime.settings, runtime.kit, now=runtime.clock())
    return check_events(frame(records), context, runtime.kit)


def test_each_batch_of_a_pass_gets_its_own_counts_and_indices(clocked: Runtime) -> None:
    first = [
        event(anonymous_id="dev-a1"),
        event(email="not-an-email"),
        event(anonymous_id="dev-a2"),
        event(anonymous_id="dev-a3"),
    ]
    second = [
        event(message_id=first[0]["message_id"], anonymous_id="dev-a1"),
        event(anonymous_id="dev-b1"),
        event(anonymous_id="dev-b2", consent_purposes=[]),
    ]
    third = [event(anonymous_id="dev-a1"), event(anonymous_id="dev-c1")]
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        results = ingest_together(
            unit,
            [checked(clocked, batch) for batch in (first, second, third)],
            source=SOURCE,
            guardrails=guardrails_from(clocked.settings),
        )
    answers = [
        (r.received, r.accepted, r.duplicates, [(x.index, x.code) for x in r.rejected], r.new_subjects) for r in results
    ]
    assert answers == [
        (4, 3, 0, [(1, RejectCode.INVALID_EMAIL)], 3),
        (3, 1, 1, [(2, RejectCode.NO_CONSENT)], 1),
        # dev-a1 was created by the first batch of the same pass: found, not created again.
        (2, 2, 0, [], 1),
    ]
    assert footprint(clocked) == (5, 5, 6)


def test_concurrent_batches_over_http_add_up_and_a_twin_batch_lands_once(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    source = f"group-{secrets.token_hex(4)}"
    batches = [[segment_event() for _ in range(40)] for _ in range(5)]
    twin = [segment_event() for _ in range(40)]

    def send(batch: list[dict[str, Any]]) -> dict[str, Any]:
        answer = live_server.graphql(INGEST, token=token, variables={"batch": {"events": batch, "source": source}})
        payload: dict[str, Any] = answer.json()["data"]["ingestEvents"]
        return payload

    with ThreadPoolExecutor(max_workers=7) as pool:
        answers = list(pool.map(send, [*batches, twin, twin]))
    assert [(a["received"], a["accepted"], a["duplicates"], a["rejected"]) for a in answers[:5]] == [
        (40, 40, 0, [])
    ] * 5
    assert sorted((a["accepted"], a["duplicates"]) for a in answers[5:]) == [(0, 40), (40, 0)]
    with live_server.runtime.sessions() as session:
        # An undeclared source is stored as its keyed hash (privacy.labels).
        kept = live_server.runtime.kit.labels.kept(source)
        stored = session.scalar(select(func.count()).select_from(EventRow).where(EventRow.source == kept))
    assert stored == 6 * 40


def test_a_batch_that_fails_fails_alone_and_the_rest_of_its_group_lands(clocked: Runtime) -> None:
    committer = GroupCommitter(clocked, max_events=10_000)
    key, guardrails = GroupKey(SOURCE, SYSTEM_ACTOR), guardrails_from(clocked.settings)
    first = checked(clocked, [event(anonymous_id="dev-first")])
    good = checked(clocked, [event(anonymous_id="dev-good")])
    # A batch the store cannot read (a column lost): it fails for real, inside the pass.
    broken = checked(clocked, [event(anonymous_id="dev-bad")])
    bad = replace(broken, valid=broken.valid.drop("channel"))

    async def together() -> list[IngestResult | BaseException]:
        # ``first`` takes the writer; ``good`` and ``bad`` wait and would be stored as one group.
        return list(
            await asyncio.gather(
                committer.ingest(key, first, guardrails),
                committer.ingest(key, good, guardrails),
                committer.ingest(key, bad, guardrails),
                return_exceptions=True,
            )
        )

    stored_first, stored_good, failed = asyncio.run(together())
    assert isinstance(stored_first, IngestResult)
    assert isinstance(stored_good, IngestResult)
    assert (stored_first.accepted, stored_good.accepted) == (1, 1)
    assert isinstance(failed, pl.exceptions.PolarsError)
    assert footprint(clocked) == (2, 2, 2)
