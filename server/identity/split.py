"""Splitting a wrong merge: what the loser brought to the winner goes back to the loser.

A merge keeps ``origin_subject_id`` on every identity and event it moves and journals the pair
in ``identity_merges``; a split reads both. Rows whose origin is the loser, or a subject that
had been merged into the loser before (followed through the journal, so a chain of merges
comes apart one link at a time), move back from the winner. The loser becomes active again
with a new data key, since its old one was destroyed at the merge. Both subjects are marked for
a rebuild of their derived data, as at the merge.

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
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from privacy.field_crypto import new_data_key
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.storage.tables import EventRow, IdentityMergeRow, IdentityRow, SubjectKeyRow, SubjectRow

MERGED = "merged"
ACTIVE = "active"


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
    winner_subject_id: int
    loser_subject_id: int
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
    """Undo one journaled merge in the caller's transaction; audited as ``identity.split``."""
    session, now = unit.session, unit.clock()
    merge = session.scalar(select(IdentityMergeRow).where(IdentityMergeRow.id == merge_id).with_for_update())
    if merge is None:
        raise SplitError(SplitErrorCode.UNKNOWN_MERGE)
    if merge.split_at is not None:
        raise SplitError(SplitErrorCode.ALREADY_SPLIT)
    winner_id, loser_id = merge.winner_subject_id, merge.loser_subject_id
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
    moved: dict[str, int] = {}
    for name, model in (("identities", IdentityRow), ("events", EventRow)):
        belongs = (model.subject_id == winner_id, model.origin_subject_id.in_(origins))
        moved[name] = int(session.scalar(select(func.count()).select_from(model).where(*belongs)) or 0)
        session.execute(update(model).where(*belongs).values(subject_id=loser_id))
    loser.status, loser.merged_into = ACTIVE, None
    session.flush()
    profiles.recompute(session, [winner_id, loser_id], unit.profiles.interests)
    mark_for_rebuild(session, [winner_id, loser_id], reason=RebuildReason.SPLIT, now=now)
    wrapped = unit.kit.key_wrapper.wrap(new_data_key(), loser_id)
    session.add(
        SubjectKeyRow(subject_id=loser_id, kek_version=wrapped.kek_version, wrapped_dek=wrapped.blob, created_at=now)
    )
    merge.split_at = now
    session.flush()
    unit.audit(
        "identity.split",
        target=f"identity_merge:{merge_id}",
        details={
            "identities_moved": moved["identities"],
            "events_moved": moved["events"],
            "origins": len(origins),
        },
    )
    return SplitResult(
        merge_id=merge_id,
        winner_subject_id=winner_id,
        loser_subject_id=loser_id,
        identities_moved=moved["identities"],
        events_moved=moved["events"],
        origins=len(origins),
        split_at=now,
    )


def _merged_into(session: Session, subject_id: int, *, until: datetime) -> set[int]:
    """``subject_id`` and every subject merged into it (directly or down a chain) by a merge that
    still stands and happened no later than ``until``: whose rows it held when it lost."""
    found = {subject_id}
    frontier = [subject_id]
    while frontier:
        losers = set(
            session.scalars(
                select(IdentityMergeRow.loser_subject_id).where(
                    IdentityMergeRow.winner_subject_id.in_(frontier),
                    IdentityMergeRow.split_at.is_(None),
                    IdentityMergeRow.merged_at <= until,
                )
            )
        )
        frontier = sorted(losers - found)
        found.update(frontier)
    return found
