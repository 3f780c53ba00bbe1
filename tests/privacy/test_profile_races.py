"""An attacker's timing: a change that removes someone's profile lands while a build partition is
between reading its events and writing their state.

The build reads a partition's events of consenting subjects, computes, then swaps the stored
state, all inside the identity writers' turn (``server.profiles.build``). A writer that changes
whose events or consent those were without taking that turn could commit in between: the build
would then write state computed from what it read before, for a subject who withdrew or from
events that now belong to someone else. These tests put the change exactly there, through the
build's ``evaluate`` seam (called after the read, before the write): the change runs in another
thread, and the partition goes on once the change has committed or is waiting for the turn. The
promise checked afterwards is the one both evaluators keep (``assert_state_follows_events``):
each consenting subject's state is that of its own events, and nobody else has any.

On SQLite every unit of work holds the one write lock from ``BEGIN IMMEDIATE`` (and this
process's writer turn), so nothing can commit inside a partition: the change simply waits. On
PostgreSQL only the advisory lock orders them, and the wait is seen in ``pg_stat_activity``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select, text

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.consent import service as consent
from server.identity.split import split_merge
from server.profiles.build import run_build, streaming_state
from server.profiles.build_runs import BuildStatus
from server.profiles.config import InterestConfig
from server.profiles.state import ProfileState
from server.runtime import Runtime
from server.storage.engine import is_sqlite
from server.storage.tables import IdentityMergeRow, ProfileDailyRow, ProfileInterestRow, ProfileSummaryRow
from tests.ingest.batches import NOW, count, event, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_profiling
from tests.profiles.state_checks import assert_state_follows_events

PROFILING = ["analytics", "profiling"]
ANA, BEA = "ana.race@example.org", "bea.race@example.org"
WAIT_S = 30.0


class Interleaved:
    """A build's evaluator that runs ``change`` in another thread once the first partition's events
    are read, and lets the partition go on when the change has committed or waits for the turn."""

    def __init__(self, runtime: Runtime, change: Callable[[], None]) -> None:
        self.runtime = runtime
        self.change = change
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __call__(self, events: pl.LazyFrame, config: InterestConfig, /) -> ProfileState:
        state = streaming_state(events, config)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="interleaved-change", daemon=True)
            self.thread.start()
            wait_until_committed_or_waiting(self.runtime, self.thread)
        return state

    def _run(self) -> None:
        try:
            self.change()
        except BaseException as error:  # handed to the test by ``finish``
            self.error = error

    def finish(self) -> None:
        """Wait for the change to end (the build has committed by now) and raise what it raised."""
        assert self.thread is not None, "the build never read a partition"
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the change never ended"
        if self.error is not None:
            raise self.error


def wait_until_committed_or_waiting(runtime: Runtime, thread: threading.Thread) -> None:
    """On PostgreSQL, until the thread has ended or another session waits for an advisory lock
    (the identity writers' turn); on SQLite at once, since the thread cannot get past ``BEGIN``."""
    if is_sqlite(runtime.engine):
        return
    deadline = time.monotonic() + WAIT_S
    while thread.is_alive():
        with runtime.engine.connect() as connection:  # a new snapshot of pg_stat_activity each time
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
        if waiting:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the change neither committed nor waited for the writers' turn")
        time.sleep(0.01)


def at(runtime: Runtime, seconds: int = 0) -> Runtime:
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def person(email: str, *, minutes_ago: int, purposes: list[str] | None = PROFILING, **fields: Any) -> dict[str, Any]:
    return event(
        email=email,
        timestamp=NOW - timedelta(minutes=minutes_ago),
        consent_purposes=purposes,
        topics=["travel"],
        **fields,
    )


def state_rows(runtime: Runtime, subject_id: int) -> int:
    return sum(
        count(runtime, model, model.subject_id == subject_id)
        for model in (ProfileDailyRow, ProfileSummaryRow, ProfileInterestRow)
    )


def build_with(runtime: Runtime, change: Callable[[], None]) -> None:
    interleaved = Interleaved(runtime, change)
    run = run_build(at(runtime, 5), partitions=1, evaluate=interleaved)
    interleaved.finish()
    assert run.status is BuildStatus.SUCCEEDED, run


def withdraw_through_the_consent_api(runtime: Runtime) -> None:
    record_profiling(at(runtime, 1), ANA, granted=False)


def withdraw_through_an_event(runtime: Runtime) -> None:
    assert ingest(at(runtime, 1), [person(ANA, minutes_ago=0, purposes=["analytics"])]).accepted == 1


def withdraw_through_a_bulk_consent_import(runtime: Runtime) -> None:
    """The columnar ledger entry point every bulk import of consent goes through (the demo's
    consent changes, ``server.demo.load.load_consent_changes``, today)."""
    subject = subject_of(runtime, IdentifierKind.EMAIL, ANA)
    entry = pl.DataFrame(
        [(subject, "profiling", 0, False, "consent", "cmp:web", "v1", NOW + timedelta(seconds=1))],
        schema=consent.LEDGER_SCHEMA,
        orient="row",
    )
    with at(runtime, 1).unit_of_work(SYSTEM_ACTOR) as unit:
        consent.record_frame(unit.session, entry)


WITHDRAWALS: dict[str, Callable[[Runtime], None]] = {
    "consent-api": withdraw_through_the_consent_api,
    "event": withdraw_through_an_event,
    "bulk-consent-import": withdraw_through_a_bulk_consent_import,
}


@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
def test_a_withdrawal_committed_inside_a_build_partition_leaves_no_state(runtime: Runtime, withdrawal: str) -> None:
    assert ingest(at(runtime), [person(ANA, minutes_ago=30), person(BEA, minutes_ago=20)]).accepted == 2
    ana = subject_of(runtime, IdentifierKind.EMAIL, ANA)
    assert ana is not None
    assert state_rows(runtime, ana) > 0

    build_with(runtime, lambda: WITHDRAWALS[withdrawal](runtime))

    assert state_rows(runtime, ana) == 0, "a build wrote state for someone who had withdrawn"
    assert_state_follows_events(runtime)
    assert run_build(at(runtime, 10), partitions=1).status is BuildStatus.SUCCEEDED
    assert state_rows(runtime, ana) == 0, "a later build brought it back"


def test_a_split_committed_inside_a_build_partition_leaves_each_side_its_own_events(runtime: Runtime) -> None:
    """Two people wrongly merged, then split: the winner's profile must not keep the other's events."""
    for seconds, device in enumerate(("phone-1", "laptop-2")):
        batch = [event(anonymous_id=device, consent_purposes=PROFILING, topics=["travel"]) for _ in range(3)]
        assert ingest(at(runtime, seconds), batch).accepted == 3
    assert ingest(at(runtime, 2), [event(user_id="cust-x", anonymous_id="phone-1", consent_purposes=None)]).merges == 0
    login = ingest(at(runtime, 3), [event(user_id="cust-x", anonymous_id="laptop-2", consent_purposes=PROFILING)])
    assert login.merges == 1
    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id)).all()

    def split() -> None:
        with at(runtime, 4).unit_of_work(SYSTEM_ACTOR) as unit:
            split_merge(unit, merge_id)

    build_with(runtime, split)

    assert_state_follows_events(runtime)
