"""The batch build recomputes what the real-time fold keeps, partition by partition, and a run that
fails, dies or collides with another leaves every partition readable at its previous or new state
(frames compared as ``tests.profiles.states`` says, floats to a relative 1e-9)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import polars as pl
import pytest
from sqlalchemy import select, update

from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.profiles.build import BuildProgress, run_build, state_as_of, streaming_state
from server.profiles.build_runs import (
    BuildErrorCode,
    BuildRunning,
    BuildStatus,
    InvalidPartitions,
    abandon_stale,
    begin_run,
    build_run,
    build_runs,
)
from server.profiles.config import InterestConfig, profile_config
from server.profiles.partitions import partitions_of
from server.profiles.quality import reports_for
from server.profiles.state import ProfileState
from server.profiles.tiers import CutPoints, latest_cut_points, tier_expr
from server.runtime import Runtime
from server.storage.tables import AuditEntryRow, ConsentStateRow, EventRow
from server.taxonomy.taxonomy import taxonomy_for
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_profiling
from tests.profiles.states import (
    KEYS,
    assert_same_state,
    in_partition,
    only,
    remove_all_state,
    rows,
    sorted_state,
    stored_state,
)
from tests.profiles.streams import Person, people, send, stream


def at(runtime: Runtime, moment: timedelta = timedelta(0)) -> Runtime:
    return fixed_clock(runtime, NOW + moment)


def withdraw_profiling(runtime: Runtime, person: Person) -> None:
    record_profiling(at(runtime), person.email, granted=False, source="test")


def subject(runtime: Runtime, person: Person) -> int:
    found = subject_of(runtime, IdentifierKind.EMAIL, person.email)
    assert found is not None
    return found


def reweighted(runtime: Runtime, weights: str) -> Runtime:
    """The same database under other interest weights, as after a change of configuration."""
    settings = runtime.settings.model_copy(update={"interest_weights": weights})
    profiles = profile_config(settings, taxonomy_for(settings.taxonomy_extra))
    return dataclasses.replace(runtime, settings=settings, profiles=profiles)


@pytest.fixture
def everyone() -> list[Person]:
    return people(24)


@pytest.fixture
def streamed(runtime: Runtime, everyone: list[Person]) -> Runtime:
    """The runtime after a stream was ingested and folded in real time, batch by batch."""
    send(runtime, stream(everyone, seed=13))
    return runtime


def test_a_build_recreates_exactly_what_the_real_time_fold_built(streamed: Runtime, everyone: list[Person]) -> None:
    real_time = stored_state(streamed)
    assert real_time.summary.height == sum(p.profiled for p in everyone), "one state per profiled person"
    assert real_time.interests.height > 0
    assert real_time.daily.filter(pl.col("type") == "purchase").height > 0
    remove_all_state(streamed)
    assert rows(stored_state(streamed)) == 0

    run = run_build(at(streamed), partitions=3)

    assert run.status is BuildStatus.SUCCEEDED, run
    assert_same_state(stored_state(streamed), real_time)
    assert (run.partitions, run.partitions_done) == (3, 3)
    assert run.subjects == real_time.summary.height
    assert run.rows_written == rows(real_time)
    assert run.events_read == 12 * sum(p.profiled for p in everyone), "the events of profiled people only"
    assert run.finished_at == NOW


def test_one_partition_and_seven_give_the_same_state(streamed: Runtime) -> None:
    assert run_build(at(streamed), partitions=1).status is BuildStatus.SUCCEEDED
    whole = stored_state(streamed)
    assert run_build(at(streamed), partitions=7).status is BuildStatus.SUCCEEDED
    assert_same_state(stored_state(streamed), whole)


def test_a_build_removes_the_state_of_everyone_without_profiling_consent_now(
    streamed: Runtime, everyone: list[Person]
) -> None:
    """A withdrawal through the ledger drops the state at once (``test_state_and_consent``); state
    left beside a consent state that says no (restored from a backup, written before profiles
    existed) goes at the next build."""
    leaving = [p for p in everyone if p.profiled][:3]
    staying = [p for p in everyone if p.profiled][3:]
    gone = {subject(streamed, p) for p in leaving}
    with streamed.sessions.begin() as session:
        session.execute(
            update(ConsentStateRow)
            .where(ConsentStateRow.subject_id.in_(gone), ConsentStateRow.purpose == ConsentPurpose.PROFILING.value)
            .values(granted=False)
        )
    before = stored_state(streamed)
    assert gone <= set(before.summary["subject_id"]), "state left beside a consent that says no"

    assert run_build(at(streamed), partitions=4).status is BuildStatus.SUCCEEDED

    after = stored_state(streamed)
    for name in KEYS:
        assert not set(getattr(after, name)["subject_id"]) & gone, name
    assert set(after.summary["subject_id"]) == {subject(streamed, p) for p in staying}
    assert_same_state(after, only(before, [s for s in before.summary["subject_id"] if s not in gone]))


class FailingAt:
    """Partition ``index`` gets a state the database refuses (one changed interest row twice, a
    duplicate key; interests are what a reweighted build rewrites): the failure strikes in its transaction
    after its old rows were deleted."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.calls = 0

    def __call__(self, events: pl.LazyFrame, config: InterestConfig, /) -> ProfileState:
        state = streaming_state(events, config)
        self.calls += 1
        if self.calls != self.index + 1:
            return state
        assert state.interests.height > 0, "the failing partition must have interests to write"
        # Changed from what is stored, or the write would skip both copies as unchanged.
        twice = state.interests.head(1).with_columns(pl.col("score") + 1.0)
        return dataclasses.replace(state, interests=pl.concat([twice, twice, state.interests.slice(1)]))


def test_a_build_failing_midway_leaves_each_partition_at_its_previous_or_its_new_state(streamed: Runtime) -> None:
    previous = stored_state(streamed)
    changed = reweighted(at(streamed), "page_view=3,click=4,search=4,purchase=9,email_open=2,signup=5")
    partitions = partitions_of(3)
    assert all(in_partition(previous, p).summary.height for p in partitions), "every partition holds someone"

    failed = run_build(changed, partitions=3, evaluate=FailingAt(1))

    assert failed.status is BuildStatus.FAILED
    assert failed.error_code == BuildErrorCode.BUILD_FAILED
    assert failed.error_message is not None
    assert "partition 2 of 3" in failed.error_message
    assert failed.partitions_done == 1
    after_failure = stored_state(streamed)
    assert run_build(changed, partitions=3).status is BuildStatus.SUCCEEDED
    new = stored_state(streamed)
    assert not in_partition(new, partitions[0]).interests.equals(in_partition(previous, partitions[0]).interests)
    assert_same_state(in_partition(after_failure, partitions[0]), in_partition(new, partitions[0]))
    assert_same_state(in_partition(after_failure, partitions[1]), in_partition(previous, partitions[1]))
    assert_same_state(in_partition(after_failure, partitions[2]), in_partition(previous, partitions[2]))


def test_batches_ingested_between_partitions_are_neither_lost_nor_counted_twice(
    streamed: Runtime, everyone: list[Person]
) -> None:
    """Done partitions fold the batch into their new state, the others build it from the events."""
    late = [
        event(email=p.email, event="purchase", amount=10.0, currency="EUR", topics=["travel"])
        | {"consent_purposes": list(p.purposes)}
        for p in everyone
    ]

    def ingest_midway(progress: BuildProgress) -> None:
        if progress.partitions_done == 1:
            assert ingest(at(streamed), late).accepted == len(everyone)

    assert run_build(at(streamed), partitions=3, progress=ingest_midway).status is BuildStatus.SUCCEEDED
    after_build = stored_state(streamed)
    assert run_build(at(streamed), partitions=3).status is BuildStatus.SUCCEEDED
    assert_same_state(after_build, stored_state(streamed))
    sent = [r for batch in stream(everyone, seed=13) for r in batch if "profiling" in r["consent_purposes"]]
    purchases = after_build.daily.filter(pl.col("type") == "purchase")["events"].sum()
    assert purchases == sum(r["event"] == "purchase" for r in sent) + len(late) - sum(not p.profiled for p in everyone)


def test_a_run_whose_process_died_is_marked_abandoned_by_the_next_build(streamed: Runtime) -> None:
    with at(streamed, -timedelta(minutes=6)).unit_of_work(SYSTEM_ACTOR) as unit:
        abandon_stale(unit.session, now=unit.clock())
        dead = begin_run(unit.session, now=unit.clock(), partitions=4, settings={})

    run = run_build(at(streamed), partitions=2)

    assert run.status is BuildStatus.SUCCEEDED
    with streamed.sessions() as session:
        marked = build_run(session, dead.id)
        finishes = session.scalars(
            select(AuditEntryRow.target).where(AuditEntryRow.action == "profile.build.finish")
        ).all()
    assert marked is not None
    assert (marked.status, marked.error_code, marked.finished_at) == (
        BuildStatus.FAILED,
        BuildErrorCode.ABANDONED,
        NOW,
    )
    assert set(finishes) == {f"profile_build:{dead.id}", f"profile_build:{run.id}"}
    assert len(finishes) == 2


def test_a_second_build_is_refused_while_one_runs(streamed: Runtime) -> None:
    refusals: list[BuildRunning] = []
    late = at(streamed, timedelta(minutes=4))  # a heartbeat four minutes old is still alive

    def try_another(progress: BuildProgress) -> None:
        if progress.partitions_done == 1:
            with pytest.raises(BuildRunning) as refused:
                run_build(late, partitions=1)
            refusals.append(refused.value)

    first = run_build(at(streamed), partitions=3, progress=try_another)

    assert first.status is BuildStatus.SUCCEEDED
    [refusal] = refusals
    assert refusal.code == BuildErrorCode.BUILD_RUNNING
    assert f"run {first.id}" in refusal.message
    with streamed.sessions() as session:
        assert [r.id for r in build_runs(session, 10)] == [first.id], "the refused build recorded nothing"


def test_partitions_out_of_range_are_refused_before_anything_is_recorded(runtime: Runtime) -> None:
    for wrong in (0, -1, 10_001):
        with pytest.raises(InvalidPartitions):
            run_build(runtime, partitions=wrong)
    with runtime.sessions() as session:
        assert build_runs(session, 10) == []


def test_a_build_reports_progress_and_is_audited(streamed: Runtime) -> None:
    seen: list[BuildProgress] = []
    run = run_build(at(streamed), partitions=4, progress=seen.append)
    assert [p.partitions_done for p in seen] == [0, 1, 2, 3, 4]
    assert seen[-1].rows_written == run.rows_written
    assert seen[-1].subjects == run.subjects
    with streamed.sessions() as session:
        actions = session.scalars(
            select(AuditEntryRow.action).where(AuditEntryRow.target == f"profile_build:{run.id}")
        ).all()
    assert sorted(actions) == ["profile.build.finish", "profile.build.start"]


def test_the_run_keeps_value_tier_cut_points_of_lifetime_revenue_among_buyers(streamed: Runtime) -> None:
    with streamed.sessions() as session:
        assert latest_cut_points(session) is None
    run = run_build(at(streamed), partitions=2)
    purchases = stored_state(streamed).daily.filter(pl.col("type") == "purchase")
    revenue = purchases.group_by("subject_id").agg(pl.col("amount").sum())
    tiers = streamed.profiles.tiers
    expected = CutPoints(
        high=revenue["amount"].quantile(tiers.high, interpolation="linear"),
        low=revenue["amount"].quantile(tiers.low, interpolation="linear"),
        buyers=revenue.height,
    )
    assert revenue.height > 2
    assert run.cut_points == expected
    with streamed.sessions() as session:
        assert latest_cut_points(session) == expected


def test_tiers_follow_the_cut_points() -> None:
    frame = pl.DataFrame({"revenue": [None, 0.0, 9.99, 10.0, 49.0, 50.0, 500.0]}, schema={"revenue": pl.Float64()})
    cuts = CutPoints(high=50.0, low=10.0, buyers=6)
    tiers = frame.select(tier_expr(pl.col("revenue"), cuts))["value_tier"].to_list()
    assert tiers == ["low", "low", "low", "normal", "normal", "high", "high"]
    before_any_build = frame.select(tier_expr(pl.col("revenue"), None))["value_tier"].to_list()
    assert before_any_build == [None] * 7


def test_state_as_of_a_cutoff_ignores_every_event_after_it(streamed: Runtime, everyone: list[Person]) -> None:
    cutoff = NOW - timedelta(days=30)
    then = state_as_of(streamed, cutoff)
    assert then.summary.height > 0
    assert then.summary["last_seen"].max() < cutoff  # type: ignore[operator]
    person = next(p for p in everyone if p.profiled)
    later = event(email=person.email, event="purchase", amount=99.0, currency="EUR", topics=["travel"])
    later |= {"timestamp": cutoff + timedelta(seconds=1), "consent_purposes": list(person.purposes)}
    assert ingest(at(streamed), [later]).accepted == 1

    assert_same_state(sorted_state(state_as_of(streamed, cutoff)), sorted_state(then))
    earlier = later | {"message_id": "before-the-cutoff", "timestamp": cutoff - timedelta(seconds=1)}
    assert ingest(at(streamed), [earlier]).accepted == 1
    moved = state_as_of(streamed, cutoff).summary["last_seen"].max()
    assert moved == cutoff - timedelta(seconds=1), "an event before the cutoff does count"


def test_a_build_stores_the_data_quality_report_of_every_source(streamed: Runtime) -> None:
    run = run_build(at(streamed), partitions=2)
    assert run.status is BuildStatus.SUCCEEDED
    with streamed.sessions() as session:
        report = reports_for(session, build_id=run.id)
        sources = set(session.scalars(select(EventRow.source).distinct()))
        stored = len(list(session.scalars(select(EventRow.message_key))))
    assert set(report["source"]) == sources
    assert report["rows"].sum() == stored


def test_a_build_writes_only_what_changed(streamed: Runtime) -> None:
    """Over the state ingestion kept current a build writes nothing; a new weight rewrites interests only."""
    current = stored_state(streamed)
    repair = run_build(at(streamed), partitions=3)
    assert repair.status is BuildStatus.SUCCEEDED
    assert repair.rows_written == 0
    assert_same_state(stored_state(streamed), current)

    reweighed = run_build(reweighted(at(streamed), "purchase=9"), partitions=3)
    assert reweighed.status is BuildStatus.SUCCEEDED
    after = stored_state(streamed)
    assert 0 < reweighed.rows_written <= after.interests.height
    assert after.daily.equals(current.daily)
    assert after.summary.equals(current.summary)
    assert not after.interests.equals(current.interests)


def test_without_a_partition_count_the_build_sizes_partitions_by_the_setting(streamed: Runtime) -> None:
    with streamed.sessions() as session:
        stored = len(list(session.scalars(select(EventRow.message_key))))
    per = stored // 3  # below the setting's floor, which model_copy does not check: three or four partitions
    sized = dataclasses.replace(
        streamed, settings=streamed.settings.model_copy(update={"build_events_per_partition": per})
    )
    run = run_build(at(sized))
    assert run.status is BuildStatus.SUCCEEDED
    assert run.partitions == -(-stored // per) in (3, 4)
