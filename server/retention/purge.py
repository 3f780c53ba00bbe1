"""A purge in the caller's unit of work: every category, one transaction.

For a caller that already holds a unit of work (a compliance request, a test) and a store small
enough for one transaction. A large purge goes through ``server.retention.run``, which commits
partition by partition, so no transaction holds the writers' turn for the whole of it.

A dry run is the purge itself inside a savepoint that is then rolled back: its counts are what
the purge would remove at that moment by construction, with no second set of counting queries
to drift from the deletes (an anonymous subject's events are counted once, say, not once as
expired and again as the subject's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from server.profiles.partitions import Partition
from server.retention.anonymous import purge_anonymous_subjects
from server.retention.events import purge_events
from server.retention.policy import Cutoffs
from server.retention.receipts import purge_receipts
from server.retention.report import PurgeReport
from server.runtime import UnitOfWork

__all__ = ["AUDIT_ACTION", "audit_purge", "purge", "purge_partition", "rolled_back_if"]

AUDIT_ACTION = "retention.purge"


def purge(unit: UnitOfWork, *, dry_run: bool = False) -> PurgeReport:
    """Everything expired as of ``unit.clock()``; ``dry_run`` counts it and changes nothing."""
    cutoffs = unit.retention.cutoffs(unit.clock())
    with rolled_back_if(unit.session, dry_run=dry_run):
        report = purge_partition(unit, Partition.whole(), cutoffs).plus(purge_receipts(unit, cutoffs))
        if not dry_run:
            audit_purge(unit, report)
    return dataclasses.replace(report, dry_run=dry_run)


def purge_partition(unit: UnitOfWork, partition: Partition, cutoffs: Cutoffs) -> PurgeReport:
    """Events first: a subject whose only events expire is then quiet, and erased if anonymous."""
    return purge_events(unit, partition, cutoffs).plus(purge_anonymous_subjects(unit, partition, cutoffs))


def audit_purge(unit: UnitOfWork, report: PurgeReport) -> None:
    """One entry with the counts; a purge that found nothing leaves none (the schedule runs daily)."""
    if report:
        unit.audit(AUDIT_ACTION, details=report.details())


@contextmanager
def rolled_back_if(session: Session, *, dry_run: bool) -> Iterator[None]:
    """For a dry run, a savepoint rolled back however the block ends."""
    if not dry_run:
        yield
        return
    savepoint = session.begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()
