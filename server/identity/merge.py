"""Carrying out merges: subjects found to be one person become one.

A loser's identities and events move to its winner (keeping ``origin_subject_id`` so that a
wrong merge can be split), its consent is merged most-restrictively, its PII is re-encrypted
under the winner's data key, and its own key is destroyed. Both sides are marked for a rebuild of
their derived data. A batch's merges run as one statement per table, are journaled row by row,
and audited in one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from privacy.consent import ConsentEntry, LegalBasis, merged_state
from server.consent import service as consent
from server.identity.rebuilds import RebuildReason, mark_for_rebuild
from server.privacy_kit import PrivacyKit
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.storage.lookup import rows_per_subject
from server.storage.tables import (
    ConsentRecordRow,
    ConsentStateRow,
    EventRow,
    IdentityMergeRow,
    IdentityRow,
    SubjectKeyRow,
    SubjectPiiRow,
    SubjectRow,
    SubjectTraitsRow,
)
from server.storage.upsert import table_of
from server.subjects.service import read_pii, write_pii

MERGE_SOURCE = "identity-merge"
CHUNK = 5_000


def merge_subjects(unit: UnitOfWork, pairs: Sequence[tuple[int, int]], *, reason: str) -> int:
    """Merge each (winner, loser) pair; a loser is never a winner in the same call. Returns the count."""
    if not pairs:
        return 0
    session, now = unit.session, unit.clock()
    losers = [loser for _winner, loser in pairs]
    _merge_consent(session, pairs, now)
    _move_pii(session, pairs, unit.kit, now)
    _fill_traits(session, pairs)
    identities = rows_per_subject(session, IdentityRow, losers)
    events = rows_per_subject(session, EventRow, losers)
    moves = [{"w": winner, "l": loser} for winner, loser in pairs]
    for model in (IdentityRow, EventRow, ConsentRecordRow):
        table = table_of(model)
        session.execute(
            update(table).where(table.c.subject_id == bindparam("l")).values(subject_id=bindparam("w")), moves
        )
    subjects = table_of(SubjectRow)
    session.execute(
        update(subjects).where(subjects.c.id == bindparam("l")).values(status="merged", merged_into=bindparam("w")),
        moves,
    )
    profiles.combine_subjects(session, pairs, unit.profiles.interests)
    mark_for_rebuild(session, [s for pair in pairs for s in pair], reason=RebuildReason.MERGE, now=now)
    for start in range(0, len(losers), CHUNK):
        chunk = losers[start : start + CHUNK]
        session.execute(delete(SubjectKeyRow).where(SubjectKeyRow.subject_id.in_(chunk)))
        session.execute(delete(ConsentStateRow).where(ConsentStateRow.subject_id.in_(chunk)))
    session.execute(
        table_of(IdentityMergeRow).insert(),
        [
            {
                "winner_subject_id": winner,
                "loser_subject_id": loser,
                "reason": reason,
                "identities_moved": identities.get(loser, 0),
                "events_moved": events.get(loser, 0),
                "merged_at": now,
                "split_at": None,
            }
            for winner, loser in pairs
        ],
    )
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


def _merge_consent(session: Session, pairs: Sequence[tuple[int, int]], now: datetime) -> None:
    """The winner's state becomes the merged state of all the sides, whichever of them won.

    Each status that differs from the winner's own (in grant or in date) is recorded in the
    ledger, dated by the latest statement it merges, never by when we processed it: a later
    explicit statement still wins, an older one does not. That date is never older than the
    winner's, so the entry always moves the state. All of a winner's losers are merged in one
    call (``merged_state`` is not a fold), so their order does not matter either.
    """
    states = consent.current_states(session, sorted({s for pair in pairs for s in pair}))
    losers_of: dict[int, list[int]] = {}
    for winner, loser in pairs:
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
    consent.record_many(session, changes)


def _move_pii(session: Session, pairs: Sequence[tuple[int, int]], kit: PrivacyKit, now: datetime) -> None:
    """Fields the winner lacks come over, re-encrypted; the winner's own values are kept."""
    losers = [loser for _winner, loser in pairs]
    with_pii = set(session.scalars(select(SubjectPiiRow.subject_id).where(SubjectPiiRow.subject_id.in_(losers))))
    for winner, loser in pairs:
        if loser not in with_pii:
            continue
        winner_fields = set(session.scalars(select(SubjectPiiRow.field).where(SubjectPiiRow.subject_id == winner)))
        incoming = {name: value for name, value in read_pii(session, loser, kit).items() if name not in winner_fields}
        if incoming:
            write_pii(session, winner, incoming, kit, now)
    if with_pii:
        session.execute(delete(SubjectPiiRow).where(SubjectPiiRow.subject_id.in_(sorted(with_pii))))


def _fill_traits(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    losers = [loser for _winner, loser in pairs]
    with_traits = {
        row.subject_id: row
        for row in session.scalars(select(SubjectTraitsRow).where(SubjectTraitsRow.subject_id.in_(losers)))
    }
    for winner, loser in pairs:
        source = with_traits.get(loser)
        if source is None:
            continue
        target = session.get(SubjectTraitsRow, winner)
        if target is None:
            session.add(
                SubjectTraitsRow(
                    subject_id=winner,
                    age_band=source.age_band,
                    gender=source.gender,
                    region=source.region,
                    updated_at=source.updated_at,
                )
            )
        else:
            target.age_band = target.age_band or source.age_band
            target.gender = target.gender or source.gender
            target.region = target.region or source.region
        session.delete(source)
    session.flush()
