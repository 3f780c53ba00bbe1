"""Anonymous subjects gone quiet: erased whole, through the erasure executor.

A subject no identifier reaches (no row in ``identities``: a visitor who never signed in, a
device id since dropped) can never be asked about, exported or erased on request, so nothing but
time ever removes it. Once it was created before the cutoff and no event of it occurred or was
received since, it is erased like any other subject (``server.erasure``: every table of
the registry, its key shredded, a receipt with reason ``retention``). Active subjects only (a
merged one is part of its winner), and none under restriction (Art. 18: the data is kept).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from server.erasure import erase_subjects
from server.profiles.partitions import Partition
from server.retention.policy import Cutoffs
from server.retention.report import Category, PurgeReport
from server.runtime import UnitOfWork
from server.storage.tables import EventRow, IdentityRow, SubjectRestrictionRow, SubjectRow
from server.storage.upsert import table_of

__all__ = ["ERASE_CHUNK", "expired_anonymous_subjects", "purge_anonymous_subjects"]

ERASE_CHUNK: Final = 5_000
"""Subjects per call of the executor: bounds its ``IN`` lists, not the transaction."""
ACTIVE: Final = "active"
SUBJECTS = table_of(SubjectRow)
EVENTS = table_of(EventRow)


def expired_anonymous_subjects(session: Session, partition: Partition, cutoffs: Cutoffs) -> list[int]:
    """Ids in the partition, ascending: one query, each condition a probe of an index by subject."""
    cutoff = cutoffs.anonymous_subjects
    subject = SUBJECTS.c.id
    recent = or_(EVENTS.c.occurred_at >= cutoff, EVENTS.c.received_at >= cutoff)
    query = (
        select(subject)
        .where(
            subject.between(partition.low, partition.high),
            SUBJECTS.c.status == ACTIVE,
            SUBJECTS.c.created_at < cutoff,
            ~exists().where(table_of(IdentityRow).c.subject_id == subject),
            ~exists().where(EVENTS.c.subject_id == subject, recent),
            ~exists().where(table_of(SubjectRestrictionRow).c.subject_id == subject),
        )
        .order_by(subject)
    )
    return [int(found) for found in session.scalars(query)]


def purge_anonymous_subjects(unit: UnitOfWork, partition: Partition, cutoffs: Cutoffs) -> PurgeReport:
    ids = expired_anonymous_subjects(unit.session, partition, cutoffs)
    removed: dict[str, int] = {}
    for start in range(0, len(ids), ERASE_CHUNK):
        receipt = erase_subjects(unit, ids[start : start + ERASE_CHUNK], request_id=None, reason="retention")
        for table, count in receipt.rows_removed.items():
            removed[table] = removed.get(table, 0) + count
    return PurgeReport(
        cutoffs=cutoffs,
        removed={Category.ANONYMOUS_SUBJECTS: removed} if ids else {},
        subjects_erased=len(ids),
    )
