"""The batch build: the profile state of every subject recomputed from the stored events.

Why a build when ingestion keeps the state current: to repair or backfill it (events stored
before profiles existed, state removed), to apply a changed weight or half-life, to remove the
state of subjects who withdrew ``profiling`` consent or were merged away, and to compute what
needs the whole population (value-tier cut points, ``server.profiles.tiers``).

How, partition by partition (``server.profiles.partitions``: ranges of subject ids), each in one
unit of work that

1. takes the identity writers' turn (``serialize_identity_writes``; on SQLite the unit of work
   already holds the one write lock from ``BEGIN IMMEDIATE``);
2. reads the partition's events of consenting subjects in bulk, as Arrow
   (``server.profiles.event_reader``);
3. computes their state with ``server.profiles.state.state_of`` on Polars' streaming engine: the
   very function the real-time fold uses, so the two agree by construction;
4. swaps the partition's stored state for it (``replace_partition_state``) and counts the
   partition in the run's record (``server.profiles.build_runs``), both in that transaction.

A failed, interrupted or killed run therefore leaves each partition at its previous state or at
its new one, never between, and the previous results stay readable throughout. Partitions are
independent: each reads and writes only its own subjects, and memory is bounded by the largest.

Reading inside the writers' turn is what keeps a concurrent ingest batch from being lost, and a
concurrent withdrawal from being undone: every writer of events, state or consent (ingestion,
merges, splits, ``server.consent.service.record_frame``) takes that turn first, so once it is ours
every change before us has committed and none can commit until we do. The events are read over
ADBC on a connection of its own, in autocommit, after the turn is taken
(``server.storage.arrow_reads``): on PostgreSQL that connection's query starts after the advisory
lock was granted and so sees every committed batch; on SQLite a child process reads the last
committed state of the WAL, which no one else can extend while we hold the write lock. (Reading
through the unit of work's own connection would go through the DB-API's rows, which is what ADBC
is here to avoid.) Where ADBC cannot reach the database (SQLite in memory) ``SessionReader`` reads
through that connection instead. (``tests/privacy/test_profile_races.py`` tries to commit a withdrawal
and a split between a partition's read and its write, through ``evaluate``.)

``run_build`` runs in the caller's thread and returns the run as it ended; ``start_build`` records
the run and builds on a background thread (the admin mutation), returning the run's id.
``state_as_of`` computes the state as it was at a past time, for training sets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import polars as pl

from server.auth.principal import SYSTEM_ACTOR, Actor
from server.observability.logs import failure_fields
from server.profiles.build_runs import (
    BuildErrorCode,
    BuildRun,
    BuildStatus,
    InvalidPartitions,
    RunNotRunning,
    abandon_stale,
    begin_run,
    build_run,
    fail_run,
    finish_run,
    record_partition,
)
from server.profiles.config import InterestConfig
from server.profiles.event_reader import consenting_events, stored_event_count
from server.profiles.partition_state import replace_partition_state, stored_partition_state
from server.profiles.partitions import MAX_PARTITIONS, Partition, default_partition_count, partitions_of
from server.profiles.quality import quality_report, store_report
from server.profiles.state import ProfileState, state_of
from server.profiles.tiers import buyer_revenue, cut_points_of
from server.runtime import Runtime, UnitOfWork
from server.storage.arrow_reads import FrameReader, SessionReader, adbc_reader
from server.storage.failures import StorageFailure, failure_of
from server.storage.locks import serialize_identity_writes

__all__ = [
    "BuildProgress",
    "StateEvaluator",
    "run_build",
    "start_build",
    "state_as_of",
    "streaming_state",
]

logger = logging.getLogger("audience.profiles")


@dataclass(frozen=True, slots=True)
class BuildProgress:
    """Reported once when the run begins (nothing done) and after each partition commits."""

    run_id: int
    partitions: int
    partitions_done: int
    events_read: int
    subjects: int
    rows_written: int


class StateEvaluator(Protocol):
    """How a partition's events become its state: ``streaming_state``, always, outside tests.

    The seam lets a test make one partition fail where a real failure would strike (a state the
    database refuses), to check what a failed run leaves behind.
    """

    def __call__(self, events: pl.LazyFrame, config: InterestConfig, /) -> ProfileState: ...


def streaming_state(events: pl.LazyFrame, config: InterestConfig) -> ProfileState:
    return state_of(events, config, streaming=True)


def run_build(
    runtime: Runtime,
    *,
    partitions: int | None = None,
    progress: Callable[[BuildProgress], None] | None = None,
    actor: Actor = SYSTEM_ACTOR,
    evaluate: StateEvaluator = streaming_state,
) -> BuildRun:
    """Build now, in this thread; returns the run as it ended (``succeeded`` or ``failed``).

    Raises ``BuildRunning`` (another run is live) or ``InvalidPartitions`` before anything is
    recorded; a failure after that ends the run ``failed`` with a code and is not raised, except
    an interruption (``KeyboardInterrupt``), which is recorded and raised again.
    """
    run = _begin(runtime, partitions=partitions, actor=actor)
    return _execute(runtime, run, progress=progress, actor=actor, evaluate=evaluate)


def start_build(runtime: Runtime, *, partitions: int | None = None, actor: Actor = SYSTEM_ACTOR) -> int:
    """Record the run and build on a background thread; returns the run's id at once.

    Refuses like ``run_build``. The thread is a daemon: a server stopping mid-build loses the
    partition in progress (its transaction rolls back) and the next build marks the run abandoned.
    """
    run = _begin(runtime, partitions=partitions, actor=actor)
    thread = threading.Thread(
        target=_execute,
        args=(runtime, run),
        kwargs={"progress": None, "actor": actor, "evaluate": streaming_state},
        name=f"profile-build-{run.id}",
        daemon=True,
    )
    thread.start()
    return run.id


def state_as_of(runtime: Runtime, cutoff: datetime, *, partition: Partition | None = None) -> ProfileState:
    """The state of ``partition``'s consenting subjects (all subjects by default) from their events
    before ``cutoff`` only: features as they could have been known then, for a time-split
    training set. Nothing is written; consent is today's (a subject who withdrew is left out).
    """
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    chosen = partition or Partition.whole()
    with runtime.sessions() as session, _reader(runtime) as adbc:
        events = consenting_events(adbc or SessionReader(session), chosen)
    before = events.lazy().filter(pl.col("occurred_at") < cutoff)
    return streaming_state(before, runtime.profiles.interests)


def _reader(runtime: Runtime) -> AbstractContextManager[FrameReader | None]:
    return adbc_reader(
        runtime.settings.effective_database_url,
        statement_timeout_s=runtime.settings.database_statement_timeout_seconds,
    )


def _begin(runtime: Runtime, *, partitions: int | None, actor: Actor) -> BuildRun:
    if partitions is not None and not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitions(MAX_PARTITIONS)
    if partitions is None:
        with runtime.sessions() as session:  # one number: no use for Arrow
            partitions = default_partition_count(
                stored_event_count(SessionReader(session)),
                per_partition=runtime.settings.build_events_per_partition,
            )
    with runtime.unit_of_work(actor) as unit:
        serialize_identity_writes(unit.session)  # two builds starting at once: one begins, one is refused
        now = unit.clock()
        for abandoned in abandon_stale(unit.session, now=now):
            _audit_finish(unit, abandoned)
        run = begin_run(unit.session, now=now, partitions=partitions, settings=_settings_of(runtime))
        unit.audit("profile.build.start", target=f"profile_build:{run.id}", details={"partitions": partitions})
    return run


def _settings_of(runtime: Runtime) -> dict[str, Any]:
    """What the run was computed under, so a history shows why two runs' scores differ."""
    settings = runtime.settings
    return {
        "interest_weights": settings.interest_weights,
        "interest_half_lives": settings.interest_half_lives,
        "interest_saturation": settings.interest_saturation,
        "value_tier_high_quantile": settings.value_tier_high_quantile,
        "value_tier_low_quantile": settings.value_tier_low_quantile,
    }


def _execute(
    runtime: Runtime,
    run: BuildRun,
    *,
    progress: Callable[[BuildProgress], None] | None,
    actor: Actor,
    evaluate: StateEvaluator,
) -> BuildRun:
    done = BuildProgress(run.id, run.partitions, 0, 0, 0, 0)
    partition: Partition | None = None
    try:
        if progress is not None:
            progress(done)
        with _reader(runtime) as adbc:
            for partition in partitions_of(run.partitions):
                done = _build_partition(runtime, run, partition, done, adbc=adbc, actor=actor, evaluate=evaluate)
                if progress is not None:
                    progress(done)
            partition = None
            return _finish(runtime, run, adbc=adbc, actor=actor)
    except RunNotRunning:
        return _current(runtime, run)  # ended by a later build, which said why
    except BaseException as error:
        ended = _fail(runtime, run, partition, error, actor=actor)
        if not isinstance(error, Exception):
            raise
        return ended


def _build_partition(
    runtime: Runtime,
    run: BuildRun,
    partition: Partition,
    done: BuildProgress,
    *,
    adbc: FrameReader | None,
    actor: Actor,
    evaluate: StateEvaluator,
) -> BuildProgress:
    with runtime.unit_of_work(actor) as unit:
        serialize_identity_writes(unit.session)  # before the read: see the module docstring
        reader: FrameReader = adbc or SessionReader(unit.session)
        events = consenting_events(reader, partition)
        state = evaluate(events.lazy(), unit.profiles.interests)
        rows = replace_partition_state(unit.session, partition, state, stored_partition_state(reader, partition))
        subjects = state.summary.height
        record_partition(unit.session, run.id, now=unit.clock(), events=events.height, subjects=subjects, rows=rows)
    return replace(
        done,
        partitions_done=done.partitions_done + 1,
        events_read=done.events_read + events.height,
        subjects=done.subjects + subjects,
        rows_written=done.rows_written + rows,
    )


def _finish(runtime: Runtime, run: BuildRun, *, adbc: FrameReader | None, actor: Actor) -> BuildRun:
    """Cut points from the state just built (and whatever ingestion folded in since), the data-quality
    report of every source, then the end."""
    with runtime.unit_of_work(actor) as unit:
        revenue = buyer_revenue(adbc or SessionReader(unit.session))
        store_report(unit.session, run.id, quality_report(unit.session, as_of=run.as_of, config=unit.profiles))
        ended = finish_run(
            unit.session, run.id, now=unit.clock(), cut_points=cut_points_of(revenue, unit.profiles.tiers)
        )
        _audit_finish(unit, ended)
    return ended


def _fail(
    runtime: Runtime, run: BuildRun, partition: Partition | None, error: BaseException, *, actor: Actor
) -> BuildRun:
    """Record the failure by its kind only: a driver's message can quote a stored value."""
    code, cause = _classify(error)
    where = "after its partitions" if partition is None else f"in partition {partition.index + 1} of {partition.count}"
    message = (
        f"failed {where} ({cause}); partitions before it hold the new state, it and those after it their previous one"
    )
    logger.error("profile build failed", extra={"outcome": code.value, **failure_fields(error)})
    try:
        with runtime.unit_of_work(actor) as unit:
            ended = fail_run(unit.session, run.id, now=unit.clock(), code=code, message=message)
            _audit_finish(unit, ended)
    except Exception as unrecorded:  # noqa: BLE001 - the database that failed may refuse this too
        # The next build marks the run abandoned. Not ``logger.exception``: see ``failure_fields``.
        logger.error("profile build failure not recorded", extra=failure_fields(unrecorded))  # noqa: TRY400
        return replace(run, status=BuildStatus.FAILED, error_code=code.value, error_message=message)
    return ended


def _classify(error: BaseException) -> tuple[BuildErrorCode, str]:
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return BuildErrorCode.INTERRUPTED, "interrupted"
    failure = failure_of(error)
    if failure is StorageFailure.DISK_FULL:
        return BuildErrorCode.DISK_FULL, "the database's disk is full"
    if failure is StorageFailure.NOT_WRITABLE:
        return BuildErrorCode.NOT_WRITABLE, "the database is not writable"
    if failure is StorageFailure.UNREACHABLE:
        return BuildErrorCode.UNREACHABLE, "the database became unreachable"
    return BuildErrorCode.BUILD_FAILED, type(error).__name__


def _current(runtime: Runtime, run: BuildRun) -> BuildRun:
    with runtime.sessions() as session:
        return build_run(session, run.id) or run


def _audit_finish(unit: UnitOfWork, run: BuildRun) -> None:
    unit.audit(
        "profile.build.finish",
        target=f"profile_build:{run.id}",
        details={
            "status": run.status.value,
            "partitions_done": run.partitions_done,
            "subjects": run.subjects,
            "rows_written": run.rows_written,
            "error_code": run.error_code,
        },
    )
