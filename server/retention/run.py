"""A purge partition by partition, each partition its own unit of work: the CLI's and the schedule's.

Why not one transaction: a first purge of a year's backlog deletes millions of rows; in one
transaction it would hold SQLite's write lock (and, on PostgreSQL, the identity writers' turn)
for minutes, stalling ingestion, and a crash would throw all of it away. A partition of subjects
(``server.profiles.partitions``, sized like a build's by ``AUDIENCE_BUILD_EVENTS_PER_PARTITION``)
is deleted and committed at once, so ingestion waits at most one partition, and a run cut short
(a crash, a kill, the server stopping) leaves each partition purged or untouched: the next run
finds what is left and finishes it. Every delete is by condition, so running twice is a no-op.

The cutoffs are taken once, at the start, from the runtime's clock: every partition of a run
cuts at the same moment. One run at a time across processes on PostgreSQL (``purge_turn``); the
audit entry, with the run's counts, is written with the last partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from server.auth.principal import SYSTEM_ACTOR, Actor
from server.profiles.partitions import default_partition_count, partitions_of
from server.retention.purge import audit_purge, purge_partition, rolled_back_if
from server.retention.receipts import purge_receipts
from server.retention.report import PurgeReport
from server.runtime import Runtime
from server.storage.locks import purge_turn
from server.storage.tables import EventRow

__all__ = ["PurgeProgress", "PurgeRunning", "run_purge"]


class PurgeRunning(Exception):
    """Another process is purging (PostgreSQL); this run did nothing."""

    def __init__(self) -> None:
        super().__init__("another purge is running; try again when it ends")


@dataclass(frozen=True, slots=True)
class PurgeProgress:
    partitions: int
    partitions_done: int
    report: PurgeReport


def run_purge(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    actor: Actor = SYSTEM_ACTOR,
    progress: Callable[[PurgeProgress], None] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> PurgeReport:
    """``keep_going`` is asked between partitions: a stopping server ends the run there."""
    with purge_turn(runtime.engine) as ours:
        if not ours:
            raise PurgeRunning
        cutoffs = runtime.retention.cutoffs(runtime.clock())
        with runtime.sessions() as session:
            events = int(session.scalar(select(func.count()).select_from(EventRow)) or 0)
        partitions = partitions_of(
            default_partition_count(events, per_partition=runtime.settings.build_events_per_partition)
        )
        report = PurgeReport(cutoffs=cutoffs, dry_run=dry_run)
        for done, partition in enumerate(partitions):
            if not keep_going():
                report = report.plus(PurgeReport(cutoffs=cutoffs, complete=False))
                break
            with runtime.unit_of_work(actor) as unit, rolled_back_if(unit.session, dry_run=dry_run):
                report = report.plus(purge_partition(unit, partition, cutoffs))
            if progress is not None:
                progress(PurgeProgress(len(partitions), done + 1, report))
        with runtime.unit_of_work(actor) as unit:
            if report.complete:
                with rolled_back_if(unit.session, dry_run=dry_run):
                    report = report.plus(purge_receipts(unit, cutoffs))
            if not dry_run:
                audit_purge(unit, report)
    return report
