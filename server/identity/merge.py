"""Carrying out merges: subjects found to be one person become one.

What a merge does to each table is declared once, in ``server.storage.subject_tables``; this
module holds one step per ``MergePolicy`` and runs the registry's steps in their declared order
(that module says why the order is what it is). A loser's identities and events move to its
winner (keeping ``origin_subject_id`` so that a wrong merge can be split), its consent is merged
most-restrictively, its PII is re-encrypted under the winner's data key, its traits fill the
winner's gaps, its profile state joins the winner's, and its own key is destroyed. Both sides
are marked for a rebuild of their derived data. A batch's merges run as one statement per table
(or a few, for a table whose step reads before it writes), are journaled row by row, and
audited in one entry.

A policy without a step, or a step given tables it does not know how to handle (a new table
declared ``COMBINE`` that the profile store does not write, say), fails at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from privacy.consent import ConsentEntry, LegalBasis, merged_state
from server.consent import service as consent
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.segments.exits import SEGMENT_TABLES, exit_subjects
from server.storage.lookup import frame_where_in, rows_per_subject
from server.storage.subject_tables import MERGE_STEPS, MergePolicy, SubjectTable, check_carried_out
from server.storage.tables import IdentityMergeRow, SubjectPiiRow, SubjectRow, SubjectTraitsRow
from server.storage.upsert import table_of, upsert
from server.subjects.service import read_pii, write_pii

__all__ = ["MERGE_SOURCE", "STEPS", "Merge", "merge_subjects"]

MERGE_SOURCE = "identity-merge"
CHUNK = 5_000
MERGED = "merged"
IDENTITIES, EVENTS = "identities", "events"
TRAITS: Final = ("age_band", "gender", "region")
TRAITS_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        **dict.fromkeys(TRAITS, pl.String()),
        "updated_at": pl.Datetime("us", "UTC"),
    }
)


@dataclass(frozen=True, slots=True)
class Merge:
    """One call's merges as every step sees them."""

    unit: UnitOfWork
    pairs: tuple[tuple[int, int], ...]
    reason: str
    now: datetime
    moved: dict[str, dict[int, int]] = field(default_factory=dict)
    """Rows re-pointed, per table and loser (``REPOINT`` fills it, the journal and audit read it)."""

    @property
    def session(self) -> Session:
        return self.unit.session

    @property
    def losers(self) -> list[int]:
        return [loser for _winner, loser in self.pairs]

    @property
    def subjects(self) -> list[int]:
        """Winners and losers, each once, in id order (the order row locks are taken in)."""
        return sorted({s for pair in self.pairs for s in pair})


def merge_subjects(unit: UnitOfWork, pairs: Sequence[tuple[int, int]], *, reason: str) -> int:
    """Merge each (winner, loser) pair; a loser is never a winner in the same call. Returns the count."""
    if not pairs:
        return 0
    merge = Merge(unit, tuple(pairs), reason, unit.clock())
    for step in MERGE_STEPS:
        STEPS[step.policy].run(merge, step.tables)
    identities, events = merge.moved[IDENTITIES], merge.moved[EVENTS]
    unit.audit(
        "identity.merge",
        details={
            "merges": len(pairs),
            "identities_moved": sum(identities.values()),
            "events_moved": sum(events.values()),
            "reason": reason,
        },
    )
    return len(pairs)


# --- the steps, one per policy ----------------------------------------------------------------


def _merge_consent(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    """The winner's state becomes the merged state of all the sides, whichever of them won; then
    the losers' own state goes (their ledger rows are re-pointed with the other rows).

    Each status that differs from the winner's own (in grant or in date) is recorded in the
    ledger, dated by the latest statement it merges, never by when we processed it: a later
    explicit statement still wins, an older one does not. That date is never older than the
    winner's, so the entry always moves the state. All of a winner's losers are merged in one
    call (``merged_state`` is not a fold), so their order does not matter either.
    """
    states = consent.current_states(merge.session, merge.subjects)
    losers_of: dict[int, list[int]] = {}
    for winner, loser in merge.pairs:
        losers_of.setdefault(winner, []).append(loser)
    changes: list[tuple[int, ConsentEntry]] = []
    for winner, losers in losers_of.items():
        before = states.get(winner, {})
        after = merged_state(before, *(states.get(loser, {}) for loser in losers))
        changes.extend(
            (winner, ConsentEntry(key, status.granted, LegalBasis.CONSENT, MERGE_SOURCE, "merge", status.since))
            for key, status in after.items()
            if before.get(key) != status
        )
    consent.record_many(merge.session, changes)
    _delete_losers(merge, tables)


def _re_encrypt(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    """Fields the winner lacks come over, re-encrypted; the winner's own values are kept.

    Runs while the losers' keys exist (``DROP_LOSER`` comes later): their fields are decrypted here.
    """
    session, kit = merge.session, merge.unit.kit
    with_pii = set(session.scalars(select(SubjectPiiRow.subject_id).where(SubjectPiiRow.subject_id.in_(merge.losers))))
    for winner, loser in merge.pairs:
        if loser not in with_pii:
            continue
        winner_fields = set(session.scalars(select(SubjectPiiRow.field).where(SubjectPiiRow.subject_id == winner)))
        incoming = {name: value for name, value in read_pii(session, loser, kit).items() if name not in winner_fields}
        if incoming:
            write_pii(session, winner, incoming, kit, merge.now)
    _delete_losers(merge, tables)


def _fill_gaps(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    """Each trait the winner lacks is taken from its first loser (in pair order) that has it.

    A winner without traits gets the first such loser's ``updated_at``; one with traits keeps its own.
    """
    winners = [winner for winner, _l in merge.pairs]
    sides = pl.concat(
        [
            pl.DataFrame({"subject_id": sorted(set(winners))}, schema={"subject_id": pl.Int64()}).with_columns(
                winner=pl.col("subject_id"), rank=pl.lit(0, pl.Int64())
            ),
            pl.DataFrame(
                {"subject_id": merge.losers, "winner": winners, "rank": range(1, len(merge.pairs) + 1)},
                schema={"subject_id": pl.Int64(), "winner": pl.Int64(), "rank": pl.Int64()},
            ),
        ]
    ).join(
        frame_where_in(
            merge.session,
            f"SELECT {', '.join(TRAITS_SCHEMA)} FROM subject_traits WHERE subject_id {{in}}",
            merge.subjects,
            TRAITS_SCHEMA,
        ),
        on="subject_id",
        how="inner",
    )
    giving = sides.filter(pl.col("rank") > 0)
    if giving.height == 0:
        return
    filled = (
        sides.join(giving.select("winner").unique(), on="winner", how="semi")
        .sort("winner", "rank")
        .group_by("winner", maintain_order=True)
        .agg(*(pl.col(name).drop_nulls().first() for name in TRAITS), pl.col("updated_at").first())
        .rename({"winner": "subject_id"})
    )
    upsert(merge.session, SubjectTraitsRow, filled.to_dicts(), keys=["subject_id"], update=list(TRAITS))
    _delete(merge.session, tables, giving["subject_id"].to_list())


def _repoint(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    """Every table in one statement for all pairs; each table's rows per loser are counted first."""
    moves = [{"w": winner, "l": loser} for winner, loser in merge.pairs]
    for declared in tables:
        table, column = declared.table, declared.subject_column
        merge.moved[declared.name] = rows_per_subject(merge.session, declared.name, merge.losers)
        merge.session.execute(
            table.update().where(table.c[column] == bindparam("l")).values({column: bindparam("w")}), moves
        )


def _combine(merge: Merge, _tables: tuple[SubjectTable, ...]) -> None:
    profiles.combine_subjects(merge.session, merge.pairs, merge.unit.profiles.interests)


def _mark_rebuild(merge: Merge, _tables: tuple[SubjectTable, ...]) -> None:
    mark_for_rebuild(merge.session, merge.subjects, reason=RebuildReason.MERGE, now=merge.now)


def _exit_loser(merge: Merge, _tables: tuple[SubjectTable, ...]) -> None:
    """The loser is no one any more: its stays end and partners hear so; the winner, marked by
    ``MARK_REBUILD``, is re-evaluated by the segment evaluator."""
    exit_subjects(merge.session, merge.losers, now=merge.now)


def _drop_loser(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    _delete_losers(merge, tables)


def _journal(merge: Merge, _tables: tuple[SubjectTable, ...]) -> None:
    identities, events = merge.moved[IDENTITIES], merge.moved[EVENTS]
    merge.session.execute(
        table_of(IdentityMergeRow).insert(),
        [
            {
                "winner_subject_id": winner,
                "loser_subject_id": loser,
                "reason": merge.reason,
                "identities_moved": identities.get(loser, 0),
                "events_moved": events.get(loser, 0),
                "merged_at": merge.now,
                "split_at": None,
            }
            for winner, loser in merge.pairs
        ],
    )


def _mark_merged(merge: Merge, _tables: tuple[SubjectTable, ...]) -> None:
    subjects = table_of(SubjectRow)
    merge.session.execute(
        subjects.update().where(subjects.c.id == bindparam("l")).values(status=MERGED, merged_into=bindparam("w")),
        [{"w": winner, "l": loser} for winner, loser in merge.pairs],
    )


def _delete_losers(merge: Merge, tables: tuple[SubjectTable, ...]) -> None:
    _delete(merge.session, tables, merge.losers)


def _delete(session: Session, tables: tuple[SubjectTable, ...], subject_ids: Sequence[int]) -> None:
    ids = sorted(set(subject_ids))
    for declared in tables:
        column = declared.table.c[declared.subject_column]
        for start in range(0, len(ids), CHUNK):
            session.execute(delete(declared.table).where(column.in_(ids[start : start + CHUNK])))


# --- which step carries out which policy ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MergeStep:
    run: Callable[[Merge, tuple[SubjectTable, ...]], None]
    knows: frozenset[str] | None
    """The tables this step's code is written for; ``None``: any table (it acts through the declaration)."""


STEPS: Final[Mapping[MergePolicy, MergeStep]] = {
    MergePolicy.MERGE_CONSENT: MergeStep(_merge_consent, frozenset({"consent_state"})),
    MergePolicy.RE_ENCRYPT: MergeStep(_re_encrypt, frozenset({"subject_pii"})),
    MergePolicy.FILL_GAPS: MergeStep(_fill_gaps, frozenset({"subject_traits"})),
    MergePolicy.REPOINT: MergeStep(_repoint, None),
    MergePolicy.COMBINE: MergeStep(_combine, frozenset(model.__tablename__ for model, _ in profiles.STATE_TABLES)),
    MergePolicy.MARK_REBUILD: MergeStep(_mark_rebuild, frozenset({"derived_rebuilds"})),
    MergePolicy.DROP_LOSER: MergeStep(_drop_loser, None),
    MergePolicy.JOURNAL: MergeStep(_journal, frozenset({"identity_merges"})),
    MergePolicy.MARK_MERGED: MergeStep(_mark_merged, frozenset({"subjects"})),
    MergePolicy.EXIT_LOSER: MergeStep(_exit_loser, SEGMENT_TABLES),
}


def _check_steps() -> None:
    """At import: every policy has a step, each step is given exactly the tables it is written
    for, and the tables the journal counts are re-pointed."""
    check_carried_out("merge", MergePolicy, MERGE_STEPS, {policy: step.knows for policy, step in STEPS.items()})
    repointed = {table.name for step in MERGE_STEPS if step.policy is MergePolicy.REPOINT for table in step.tables}
    if not {IDENTITIES, EVENTS} <= repointed:
        raise RuntimeError("the merge journal counts re-pointed identities and events")


_check_steps()
