"""Ending subjects' segment stays and telling every partner that knew of them: the one writer
that merges (the loser) and erasure share.

Set-based statements per chunk of ids. An exit reaches a partner under the pseudonym its enter
carried (copied from that entry, so no key is needed and an erased subject's exit still reads
as the partner knew it). The change log's lock is taken first: see ``GrantChangeRow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.orm import Session

from server.segments.store import add_member_counts
from server.storage.base import UtcDateTime
from server.storage.locks import serialize_change_log_writes
from server.storage.stale_sketches import drop_segment_sketches
from server.storage.tables import GrantAudienceRow, GrantChangeRow, SegmentMembershipRow
from server.storage.upsert import table_of

__all__ = ["ENTER", "EXIT", "SEGMENT_TABLES", "exit_subjects", "unlink_changes"]

SEGMENT_TABLES: Final = frozenset(
    model.__tablename__ for model in (SegmentMembershipRow, GrantChangeRow, GrantAudienceRow)
)
"""The subject tables whose merge and split steps are the segment evaluator's."""
ENTER: Final = "enter"
EXIT: Final = "exit"
CHUNK: Final = 5_000


def _chunks(subject_ids: Sequence[int]) -> list[list[int]]:
    ids = sorted(set(subject_ids))
    return [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]


def exit_subjects(session: Session, subject_ids: Sequence[int], *, now: datetime) -> int:
    """Close the subjects' open stays in every segment, and write an exit to every grant whose
    partner was told they were in; the sketches of the segments they leave are deleted. Returns the
    exits written to partners."""
    if not subject_ids:
        return 0
    serialize_change_log_writes(session)
    stays, audience, changes = table_of(SegmentMembershipRow), table_of(GrantAudienceRow), table_of(GrantChangeRow)
    entered = changes.alias("entered")
    told = 0
    for ids in _chunks(subject_ids):
        ending = {
            int(segment_id): -int(count)
            for segment_id, count in session.execute(
                select(stays.c.segment_id, func.count())
                .where(stays.c.subject_id.in_(ids), stays.c.exited_at.is_(None))
                .group_by(stays.c.segment_id)
            )
        }
        add_member_counts(session, ending)
        drop_segment_sketches(session, ending.keys())
        session.execute(
            update(stays).where(stays.c.subject_id.in_(ids), stays.c.exited_at.is_(None)).values(exited_at=now)
        )
        exits = (
            select(
                audience.c.grant_id,
                audience.c.subject_id,
                entered.c.pseudonym,
                literal(EXIT).label("kind"),
                literal(now, UtcDateTime()).label("at"),
            )
            .join(entered, entered.c.seq == audience.c.entered_seq)
            .where(audience.c.subject_id.in_(ids))
            .order_by(audience.c.grant_id, audience.c.subject_id)
        )
        written = session.execute(
            changes.insert()
            .from_select(["grant_id", "subject_id", "pseudonym", "kind", "at"], exits)
            .returning(changes.c.seq)
        )
        told += len(written.all())
        session.execute(delete(audience).where(audience.c.subject_id.in_(ids)))
    return told


def unlink_changes(session: Session, subject_ids: Sequence[int]) -> int:
    """Clear the subjects' ids from the change log; the entries (and the pseudonyms partners
    hold) stay. Returns the entries touched."""
    changes = table_of(GrantChangeRow)
    touched = 0
    for ids in _chunks(subject_ids):
        cleared = session.execute(
            update(changes).where(changes.c.subject_id.in_(ids)).values(subject_id=None).returning(changes.c.seq)
        )
        touched += len(cleared.all())
    return touched
