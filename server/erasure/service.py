"""Erasing subjects: every row that references them, in the caller's one transaction, with a receipt.

``erase_subjects`` takes the identity writers' turn (``serialize_identity_writes``: on PostgreSQL
a concurrent ingestion or build partition waits, so nothing is written for the person after the
erasure commits; SQLite has one writer anyway), widens the ids to whole persons
(``server.erasure.persons``), tells the derived data that outlives rows (``server.erasure.derived``),
deletes the stored sketches of the segments they are in (hashes of their ids), then runs one step
per declared table in the registry's order, ``subjects`` last, and writes the receipt and its audit
entry. Nothing commits here: a crash before the caller's commit leaves the
database as it was, and running the erasure again with the same ids does all of it. Running it on
ids already erased removes nothing and writes a receipt of zeros (idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from privacy.erasure import ErasureReceipt, check_reason
from server.erasure import steps
from server.erasure.derived import notify_derived
from server.erasure.persons import whole_persons
from server.erasure.receipts import write_receipt
from server.runtime import UnitOfWork
from server.storage.locks import serialize_identity_writes
from server.storage.stale_sketches import drop_sketches_of_subjects
from server.storage.subject_tables import SUBJECTS, ErasePolicy
from server.storage.tables import GrantAudienceRow

__all__ = ["AUDIT_ACTION", "erase_subjects"]

AUDIT_ACTION: Final = "erasure.completed"
SKETCHES: Final = "segment_sketches"


def erase_subjects(
    unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None, reason: str
) -> ErasureReceipt:
    """Erase the persons ``subject_ids`` belong to, whole; the receipt counts what went.

    Pass every subject a request reaches (``server.subjects.reach.persons_reached``: all scopes);
    fragments merged into them, or that they were merged into, are found here.
    """
    check_reason(reason)
    started_at = unit.clock()
    session = unit.session
    serialize_identity_writes(session)
    erasure = steps.Erasure(session, tuple(whole_persons(session, subject_ids)), started_at)
    rows_removed: dict[str, int] = {}
    keys_destroyed = 0
    rows_removed.update(notify_derived(unit, erasure.subject_ids))
    # Sketches hold hashes of members: those of the person's segments go before the stays that
    # find them do, in this transaction, so none outlives the erasure with the person in it.
    rows_removed[SKETCHES] = drop_sketches_of_subjects(session, erasure.subject_ids)
    for step in steps.ERASE_STEPS:
        [table] = step.tables
        removed = steps.STEPS[step.policy].run(erasure, table)
        rows_removed[table.name] = removed
        if step.policy is ErasePolicy.SHRED:
            keys_destroyed += removed
    audience = GrantAudienceRow.__tablename__
    rows_removed[audience] = rows_removed.get(audience, 0) + erasure.audiences_left
    receipt = write_receipt(
        session,
        request_id=request_id,
        reason=reason,
        started_at=started_at,
        completed_at=unit.clock(),
        rows_removed=rows_removed,
        subjects=rows_removed.get(SUBJECTS, 0),
        keys_destroyed=keys_destroyed,
        identifiers_suppressed=erasure.suppressed,
    )
    target = f"request:{request_id}" if request_id is not None else f"erasure_receipt:{receipt.id}"
    unit.audit(AUDIT_ACTION, target=target, details=receipt.audit_details())
    return receipt
