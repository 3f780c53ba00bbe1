"""PLACEHOLDER of the erasure executor, only so that retention (``server.retention``) runs and is
tested on its branch. The real executor (branch h/erasure) replaces this whole module at merge:
it suppresses identifiers, shreds keys in order, resumes after a crash and audits each step.

Here: the registry's tables in declared order, each by its erase policy, one set-based statement
per table over the given subjects, and a receipt with the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update

from server.runtime import UnitOfWork
from server.storage.subject_tables import SUBJECT_TABLES, ErasePolicy
from server.storage.tables import ErasureReceiptRow, MessageReceiptRow
from server.storage.upsert import insert_selected_ignoring_conflicts

__all__ = ["ErasureReceipt", "erase_subjects"]


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    id: int
    request_id: int | None
    reason: str
    subjects: int
    rows_removed: dict[str, int] = field(default_factory=dict)


def erase_subjects(
    unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None = None, reason: str = "retention"
) -> ErasureReceipt:
    session = unit.session
    started = unit.clock()
    ids = sorted(set(subject_ids))
    removed: dict[str, int] = {}
    for declared in SUBJECT_TABLES:
        table = declared.table
        column = table.c[declared.subject_column]
        if declared.erase is ErasePolicy.UNLINK:
            for name in declared.columns:
                session.execute(update(table).where(table.c[name].in_(ids)).values({name: None}))
            continue
        if declared.erase is ErasePolicy.KEEP_AS_RECEIPT:
            kept = select(table.c.source, table.c.message_key).where(column.in_(ids))
            insert_selected_ignoring_conflicts(session, MessageReceiptRow, ["source", "message_key"], kept)
        removed[declared.name] = session.execute(delete(table).where(column.in_(ids))).rowcount  # type: ignore[attr-defined]
    row = ErasureReceiptRow(
        request_id=request_id,
        reason=reason,
        started_at=started,
        completed_at=unit.clock(),
        subjects=len(ids),
        keys_destroyed=removed.get("subject_keys", 0),
        identifiers_suppressed=0,
        rows_removed=removed,
    )
    session.add(row)
    session.flush()
    return ErasureReceipt(id=row.id, request_id=request_id, reason=reason, subjects=len(ids), rows_removed=removed)
