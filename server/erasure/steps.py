"""One step per ``ErasePolicy``: what erasure does to one declared table, for every erased id at once.

Each step is a few set-based statements per chunk of ids (``IN`` lists of ``CHUNK``), each an
index probe on the table's subject column (every declared table is indexed on it; see
docs/erasure.md), never a loop over rows. A step returns the rows it removed from its table, and
the suppression step also the identifiers it added to the list (``Erasure.suppressed``).

A policy without a step, or a step given a table its code is not written for, fails at import
(``check_carried_out``), as for merges and splits. The order is the registry's, checked by
``privacy.erasure.check_erasure_order``: ``subjects`` last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, literal, select, union
from sqlalchemy.orm import Session

from privacy.erasure import check_erasure_order
from server.segments.exits import exit_subjects, unlink_changes
from server.storage.base import UtcDateTime
from server.storage.subject_tables import (
    SUBJECT_TABLES,
    SUBJECTS,
    ErasePolicy,
    Step,
    SubjectTable,
    check_carried_out,
)
from server.storage.tables import MessageReceiptRow, SuppressionRow
from server.storage.upsert import dialect_insert, insert_selected_ignoring_conflicts

__all__ = ["CHUNK", "ERASE_STEPS", "STEPS", "EraseStep", "Erasure"]

CHUNK: Final = 5_000


@dataclass(slots=True)
class Erasure:
    """One call's erasure as every step sees it."""

    session: Session
    subject_ids: tuple[int, ...]
    now: datetime
    suppressed: int = 0
    """Identifier pseudonyms newly added to the suppression list."""
    audiences_left: int = 0
    """Partner audience rows (``grant_audience``) the notify step ended as it told the partners: the
    table's own step then finds none, and the receipt counts these for it."""

    def chunks(self) -> Iterator[list[int]]:
        for start in range(0, len(self.subject_ids), CHUNK):
            yield list(self.subject_ids[start : start + CHUNK])


def _count(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _delete(erasure: Erasure, declared: SubjectTable) -> int:
    table = declared.table
    column = table.c[declared.subject_column]
    return sum(_count(erasure.session.execute(delete(table).where(column.in_(ids)))) for ids in erasure.chunks())


def _shred(erasure: Erasure, declared: SubjectTable) -> int:
    """Deleting the wrapped data key is the shredding: every ciphertext under it, in this database
    and in any copy, needs it to decrypt. Copies keep their own wrapped key, so the operator's KEK
    rotation finishes the job for backups (docs/erasure.md)."""
    return _delete(erasure, declared)


def _keep_as_receipt(erasure: Erasure, declared: SubjectTable) -> int:
    """Each event's ``(source, message_key)`` goes to ``message_receipts`` first, so a resend of an
    erased event is a duplicate, never judged anew (and never stored again)."""
    events = declared.table
    for ids in erasure.chunks():
        keys = select(events.c.source, events.c.message_key).where(events.c[declared.subject_column].in_(ids))
        insert_selected_ignoring_conflicts(erasure.session, MessageReceiptRow, ["source", "message_key"], keys)
    return _delete(erasure, declared)


def _suppress_then_delete(erasure: Erasure, declared: SubjectTable) -> int:
    """Every identifier's pseudonym (all kinds, key versions and scopes) joins the suppression
    list, so the same person sent again is refused at the gate until they consent anew."""
    identities = declared.table
    suppressions = dialect_insert(erasure.session, SuppressionRow)
    now = literal(erasure.now, UtcDateTime())
    for ids in erasure.chunks():
        pseudonyms = (
            select(identities.c.kind, identities.c.key_version, identities.c.pseudonym, now)
            .where(identities.c[declared.subject_column].in_(ids))
            .distinct()
        )
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT .. SELECT .. ON CONFLICT.
        inserted = erasure.session.execute(
            suppressions.from_select(["kind", "key_version", "pseudonym", "suppressed_at"], pseudonyms)
            .on_conflict_do_nothing()
            .returning(suppressions.table.c.kind)
        )
        erasure.suppressed += len(inserted.all())
    return _delete(erasure, declared)


def _unlink(erasure: Erasure, declared: SubjectTable) -> int:
    """The journal row stays (a merge happened, its counts stay true); whichever of its subject
    columns holds an erased id is cleared. Returns the rows touched, each once."""
    journal = declared.table
    touched: set[int] = set()
    for ids in erasure.chunks():
        touched.update(
            erasure.session.scalars(
                union(*(select(journal.c.id).where(journal.c[column].in_(ids)) for column in declared.columns))
            )
        )
        for column in declared.columns:
            erasure.session.execute(journal.update().where(journal.c[column].in_(ids)).values({column: None}))
    return len(touched)


def _notify_then_unlink(erasure: Erasure, declared: SubjectTable) -> int:
    """Partners told the subject was in a segment are told it left, under the pseudonym they know
    (Art. 17(2), 19); then the log forgets whose entries they were."""
    erasure.audiences_left += exit_subjects(erasure.session, erasure.subject_ids, now=erasure.now)
    return unlink_changes(erasure.session, erasure.subject_ids)


@dataclass(frozen=True, slots=True)
class EraseStep:
    run: Callable[[Erasure, SubjectTable], int]
    knows: frozenset[str] | None
    """The tables this step's code is written for; ``None``: any table (it acts through the declaration)."""


STEPS: Mapping[ErasePolicy, EraseStep] = {
    ErasePolicy.DELETE: EraseStep(_delete, None),
    ErasePolicy.SHRED: EraseStep(_shred, frozenset({"subject_keys"})),
    ErasePolicy.KEEP_AS_RECEIPT: EraseStep(_keep_as_receipt, frozenset({"events"})),
    ErasePolicy.SUPPRESS_THEN_DELETE: EraseStep(_suppress_then_delete, frozenset({"identities"})),
    ErasePolicy.UNLINK: EraseStep(_unlink, frozenset({"identity_merges"})),
    ErasePolicy.NOTIFY_THEN_UNLINK: EraseStep(_notify_then_unlink, frozenset({"grant_changes"})),
}
"""Looked up at each call (``server.erasure.service``), so a test can wrap a step."""

ERASE_STEPS: Final[tuple[Step[ErasePolicy], ...]] = tuple(Step(table.erase, (table,)) for table in SUBJECT_TABLES)
"""Table by table in declared order: the ``DELETE`` tables are not declared together, and need not be."""


def _check_steps(tables: Sequence[SubjectTable]) -> None:
    check_carried_out("erase", ErasePolicy, ERASE_STEPS, {policy: step.knows for policy, step in STEPS.items()})
    check_erasure_order([table.name for table in tables], subject_rows=SUBJECTS)


_check_steps(SUBJECT_TABLES)
