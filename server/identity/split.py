"""Splitting a wrong merge: what the loser brought to the winner goes back to the loser.

What a split does to each table is declared once, in ``server.storage.subject_tables``; this
module holds one step per ``SplitPolicy`` and runs the registry's steps in their declared order.
A policy without a step, or a step given tables it is not written for, fails at import.

A merge keeps ``origin_subject_id`` on every identity and event it moves and journals the pair
in ``identity_merges``; a split reads both. Rows whose origin is the loser, or a subject that
had been merged into the loser before (followed through the journal, so a chain of merges
comes apart one link at a time), move back from the winner. Both sides' profile state is
recomputed from the events each holds afterwards. The loser becomes active again with a new data
key, since its old one was destroyed at the merge. Both subjects are marked for a rebuild of
their derived data, as at the merge.

What a split cannot give back, on purpose:

- PII and coarse traits that came over at the merge stay with the winner. They were
  re-encrypted under the winner's key and nothing records which fields were the loser's (a
  field's ``updated_at`` is also moved by later writes), so any attribution would be a guess,
  and a wrong guess hands one person's data to another. An operator who knows fixes it through
  a rectification request.
- Consent: the loser starts with none (opt-in), so its events are kept but serve nothing until
  the person consents again. The ledger rows moved at the merge carry no origin, and copying back
  only the ones that look attributable (an event's statement at an event's timestamp) could
  revive a grant the person later withdrew through another channel. The winner keeps its merged,
  most restrictive, state.
- Rows first seen after the merge were first seen on the winner and stay there, even when they
  carry one of the loser's identifiers: the winner is their origin.

Refusals are ``SplitError`` with a ``code``::

    SplitError
      UNKNOWN_MERGE        no journal row has this id
      ALREADY_SPLIT        the journal row has a split time
      WINNER_MERGED_AWAY   the winner was merged into another subject since: split that merge first
      WINNER_NOT_ACTIVE    the winner is gone otherwise (erased)
      LOSER_NOT_MERGED     the loser is not merged into the winner any more (erased, or changed by hand)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy.field_crypto import new_data_key
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.segments.exits import SEGMENT_TABLES
from server.storage.locks import serialize_identity_writes
from server.storage.subject_tables import SPLIT_STEPS, SplitPolicy, SubjectTable, check_carried_out
from server.storage.tables import IdentityMergeRow, SubjectKeyRow, SubjectRow

MERGED = "merged"
ACTIVE = "active"
IDENTITIES, EVENTS = "identities", "events"


class SplitErrorCode(enum.StrEnum):
    UNKNOWN_MERGE = "UNKNOWN_MERGE"
    ALREADY_SPLIT = "ALREADY_SPLIT"
    WINNER_MERGED_AWAY = "WINNER_MERGED_AWAY"
    WINNER_NOT_ACTIVE = "WINNER_NOT_ACTIVE"
    LOSER_NOT_MERGED = "LOSER_NOT_MERGED"


SPLIT_MESSAGES: dict[SplitErrorCode, str] = {
    SplitErrorCode.UNKNOWN_MERGE: "no merge has this id; see `audience identity merges`",
    SplitErrorCode.ALREADY_SPLIT: "this merge has already been split",
    SplitErrorCode.WINNER_MERGED_AWAY: "the winner of this merge was merged into another subject since; "
    "split that later merge first",
    SplitErrorCode.WINNER_NOT_ACTIVE: "the winner of this merge is no longer active (erased)",
    SplitErrorCode.LOSER_NOT_MERGED: "the loser of this merge is no longer merged into its winner",
}


class SplitError(Exception):
    """A merge that cannot be split; the message names the rule, never a subject's data."""

    def __init__(self, code: SplitErrorCode) -> None:
        super().__init__(SPLIT_MESSAGES[code])
        self.code = code
        self.message = SPLIT_MESSAGES[code]


@dataclass(frozen=True, slots=True)
class SplitResult:
    merge_id: int
    winner_subject_id: int
    loser_subject_id: int
    identities_moved: int
    events_moved: int
    origins: int
    """How many subjects' rows went back: the loser and those merged into it before."""
    split_at: datetime


@dataclass(frozen=True, slots=True)
class MergeInfo:
    id: int
    winner_subject_id: int | None
    loser_subject_id: int | None
    """Either side is ``None`` once that person was erased (the row stays as a receipt)."""
    reason: str
    identities_moved: int
    events_moved: int
    merged_at: datetime
    split_at: datetime | None


def recent_merges(session: Session, *, limit: int = 20) -> list[MergeInfo]:
    """The journal, newest first: what an operator picks a merge to split from."""
    rows = session.scalars(
        select(IdentityMergeRow).order_by(IdentityMergeRow.merged_at.desc(), IdentityMergeRow.id.desc()).limit(limit)
    )
    return [
        MergeInfo(
            id=row.id,
            winner_subject_id=row.winner_subject_id,
            loser_subject_id=row.loser_subject_id,
            reason=row.reason,
            identities_moved=row.identities_moved,
            events_moved=row.events_moved,
            merged_at=row.merged_at,
            split_at=row.split_at,
        )
        for row in rows
    ]


def split_merge(unit: UnitOfWork, merge_id: int) -> SplitResult:
    """Undo one journaled merge in the caller's transaction; audited as ``identity.split``.

    Takes the identity writers' turn first, like a merge (inside ingestion): a split moves events
    between subjects and recomputes both sides' profile state, so one committed inside a build
    partition, between its read and its write, would leave the winner with state built from the
    loser's events too (on PostgreSQL; on SQLite the unit of work's write lock orders them).
    """
    session, now = unit.session, unit.clock()
    serialize_identity_writes(session)  # before the row locks below, which a turn-holder may need
    merge = session.scalar(select(IdentityMergeRow).where(IdentityMergeRow.id == merge_id).with_for_update())
    if merge is None:
        raise SplitError(SplitErrorCode.UNKNOWN_MERGE)
    if merge.split_at is not None:
        raise SplitError(SplitErrorCode.ALREADY_SPLIT)
    winner_id, loser_id = merge.winner_subject_id, merge.loser_subject_id
    if winner_id is None or loser_id is None:
        raise SplitError(SplitErrorCode.WINNER_NOT_ACTIVE)
    subjects = {
        row.id: row
        for row in session.scalars(select(SubjectRow).where(SubjectRow.id.in_([winner_id, loser_id])).with_for_update())
    }
    winner, loser = subjects.get(winner_id), subjects.get(loser_id)
    if winner is None or winner.status != ACTIVE:
        merged_away = winner is not None and winner.status == MERGED
        raise SplitError(SplitErrorCode.WINNER_MERGED_AWAY if merged_away else SplitErrorCode.WINNER_NOT_ACTIVE)
    if loser is None or loser.status != MERGED or loser.merged_into != winner_id:
        raise SplitError(SplitErrorCode.LOSER_NOT_MERGED)

    origins = sorted(_merged_into(session, loser_id, until=merge.merged_at))
    split = Split(unit, merge, loser, winner_id, loser_id, origins, now)
    for step in SPLIT_STEPS:
        STEPS[step.policy].run(split, step.tables)
    session.flush()
    identities, events = sum(split.moved[IDENTITIES].values()), sum(split.moved[EVENTS].values())
    unit.audit(
        "identity.split",
        target=f"identity_merge:{merge_id}",
        details={"identities_moved": identities, "events_moved": events, "origins": len(split.origins)},
    )
    return SplitResult(
        merge_id=merge_id,
        winner_subject_id=winner_id,
        loser_subject_id=loser_id,
        identities_moved=identities,
        events_moved=events,
        origins=len(split.origins),
        split_at=now,
    )


@dataclass(frozen=True, slots=True)
class Split:
    """One split as every step sees it; the journal row and the loser are locked by ``split_merge``."""

    unit: UnitOfWork
    merge: IdentityMergeRow
    loser: SubjectRow
    winner_id: int
    loser_id: int
    origins: list[int]
    """The loser and every subject merged into it before it lost: whose rows go back."""
    now: datetime
    moved: dict[str, dict[int, int]] = field(default_factory=dict)
    """Rows moved back per table (keyed by the loser, as at the merge), for the audit and the result."""

    @property
    def session(self) -> Session:
        return self.unit.session

    @property
    def sides(self) -> list[int]:
        return [self.winner_id, self.loser_id]


def _by_origin(split: Split, tables: tuple[SubjectTable, ...]) -> None:
    winner, loser = split.sides
    for declared in tables:
        table = declared.table
        belongs = (table.c[declared.subject_column] == winner, table.c.origin_subject_id.in_(split.origins))
        count = int(split.session.scalar(select(func.count()).select_from(table).where(*belongs)) or 0)
        split.moved[declared.name] = {loser: count}
        split.session.execute(table.update().where(*belongs).values({declared.subject_column: loser}))


def _recompute(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    profiles.recompute(split.session, split.sides, split.unit.profiles.interests)


def _mark_rebuild(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    mark_for_rebuild(split.session, split.sides, reason=RebuildReason.SPLIT, now=split.now)


def _re_evaluate(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    """Memberships follow the profiles just recomputed: the segment evaluator takes both sides'
    marks (set again here, so this step holds whatever order the registry gives it)."""
    _mark_rebuild(split, _tables)


def _new_key(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    loser = split.loser_id
    wrapped = split.unit.kit.key_wrapper.wrap(new_data_key(), loser)
    split.session.add(
        SubjectKeyRow(subject_id=loser, kek_version=wrapped.kek_version, wrapped_dek=wrapped.blob, created_at=split.now)
    )


def _stays_with_winner(_split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    """Nothing moves back: the module's docstring says why PII, traits and consent cannot."""


def _journal(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    split.merge.split_at = split.now


def _reactivate(split: Split, _tables: tuple[SubjectTable, ...]) -> None:
    split.loser.status, split.loser.merged_into = ACTIVE, None


@dataclass(frozen=True, slots=True)
class SplitStep:
    run: Callable[[Split, tuple[SubjectTable, ...]], None]
    knows: frozenset[str] | None
    """The tables this step's code is written for; ``None``: any table (it acts through the declaration)."""


STEPS: Final[Mapping[SplitPolicy, SplitStep]] = {
    SplitPolicy.BY_ORIGIN: SplitStep(_by_origin, None),
    SplitPolicy.RECOMPUTE: SplitStep(_recompute, frozenset(model.__tablename__ for model, _ in profiles.STATE_TABLES)),
    SplitPolicy.NEW_KEY: SplitStep(_new_key, frozenset({"subject_keys"})),
    SplitPolicy.REACTIVATE: SplitStep(_reactivate, frozenset({"subjects"})),
    SplitPolicy.STAYS_WITH_WINNER: SplitStep(_stays_with_winner, None),
    SplitPolicy.JOURNAL: SplitStep(_journal, frozenset({"identity_merges"})),
    SplitPolicy.MARK_REBUILD: SplitStep(_mark_rebuild, frozenset({"derived_rebuilds"})),
    SplitPolicy.RE_EVALUATE: SplitStep(_re_evaluate, SEGMENT_TABLES),
}


def _check_steps() -> None:
    """At import: every policy has a step, each step is given exactly the tables it is written
    for, and the tables the result counts go back by origin."""
    check_carried_out("split", SplitPolicy, SPLIT_STEPS, {policy: step.knows for policy, step in STEPS.items()})
    by_origin = {table.name for step in SPLIT_STEPS if step.policy is SplitPolicy.BY_ORIGIN for table in step.tables}
    if not {IDENTITIES, EVENTS} <= by_origin:
        raise RuntimeError("a split reports the identities and events it moved back by origin")


_check_steps()


def _merged_into(session: Session, subject_id: int, *, until: datetime) -> set[int]:
    """``subject_id`` and every subject merged into it (directly or down a chain) by a merge that
    still stands and happened no later than ``until``: whose rows it held when it lost."""
    found = {subject_id}
    frontier = [subject_id]
    while frontier:
        losers: set[int] = set(
            session.scalars(
                select(IdentityMergeRow.loser_subject_id).where(
                    IdentityMergeRow.winner_subject_id.in_(frontier),
                    IdentityMergeRow.split_at.is_(None),
                    IdentityMergeRow.merged_at <= until,
                    IdentityMergeRow.loser_subject_id.is_not(None),
                )
            )
        )
        frontier = sorted(losers - found)
        found.update(frontier)
    return found
