"""A purge in the caller's unit of work: every category, one transaction.

For a caller that already holds a unit of work (a compliance request, a test) and a store small
enough for one transaction. A large purge goes through ``server.retention.run``, which commits
partition by partition, so no transaction holds the writers' turn for the whole of it.
"""

from __future__ import annotations

from server.profiles.partitions import Partition
from server.retention.anonymous import purge_anonymous_subjects
from server.retention.events import purge_events
from server.retention.policy import Cutoffs
from server.retention.receipts import purge_receipts
from server.retention.report import PurgeReport
from server.runtime import UnitOfWork

__all__ = ["AUDIT_ACTION", "audit_purge", "purge", "purge_partition"]

AUDIT_ACTION = "retention.purge"


def purge(unit: UnitOfWork, *, dry_run: bool = False) -> PurgeReport:
    """Everything expired as of ``unit.clock()``; ``dry_run`` counts it and changes nothing."""
    cutoffs = unit.retention.cutoffs(unit.clock())
    report = purge_partition(unit, Partition.whole(), cutoffs, dry_run=dry_run).plus(
        purge_receipts(unit, cutoffs, dry_run=dry_run)
    )
    if not dry_run:
        audit_purge(unit, report)
    return report


def purge_partition(unit: UnitOfWork, partition: Partition, cutoffs: Cutoffs, *, dry_run: bool) -> PurgeReport:
    """Events first: a subject whose only events expire is then quiet, and erased if anonymous."""
    events = purge_events(unit, partition, cutoffs, dry_run=dry_run)
    return events.plus(purge_anonymous_subjects(unit, partition, cutoffs, dry_run=dry_run))


def audit_purge(unit: UnitOfWork, report: PurgeReport) -> None:
    """One entry with the counts; a purge that found nothing leaves none (the schedule runs daily)."""
    if report:
        unit.audit(AUDIT_ACTION, details=report.details())
