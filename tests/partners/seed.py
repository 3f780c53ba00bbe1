"""Segment stays written the way the evaluator writes them, for tests that need a member to enter or
leave at an exact moment (pages stable while the segment changes, a feed resumed mid-way).

Grants are opened and revocations made by the real service code (``server.segments.grants``,
``server.segments.memberships.open_grant``), as a marketer's would be; a
subject entering opens a stay (``segment_memberships``),
and, for each grant of the segment, adds an audience row and an ``enter`` entry that carries the
partner's pseudonym (encoded with the real codec); leaving closes the stay and writes the ``exit``
under the pseudonym the enter carried (``server.segments.exits`` does exactly that for merges and
erasure). Writers of the change log take its lock first.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.segments import grants
from server.segments.exits import ENTER, EXIT
from server.segments.memberships import open_grant
from server.storage.locks import serialize_change_log_writes
from server.storage.tables import (
    GrantAudienceRow,
    GrantChangeRow,
    SegmentGrantRow,
    SegmentMembershipRow,
    SegmentRow,
)


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    segment_id: int
    segment: str
    partner_id: int
    purpose: Purpose


def segment(runtime: Runtime, name: str | None = None) -> tuple[int, str]:
    """A ready segment whose stays only the test writes: its rule is in a form the engine cannot read,
    so the server's segment worker marks it failed and keeps its members as they are (what a failed
    evaluation does), instead of evaluating them away."""
    name = name or f"seg-{secrets.token_hex(4)}"
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        row = SegmentRow(
            name=name,
            rule={"v": 0, "rule": "seeded"},
            rule_text="true",
            depends_on=[],
            time_dependent=False,
            status="ready",
            created_at=now,
            updated_at=now,
        )
        unit.session.add(row)
        unit.session.flush()
        return row.id, name


def grant(runtime: Runtime, segment_id: int, partner_id: int, purpose: Purpose) -> Grant:
    """A grant row as the service writes it (the service refuses a segment whose rule it cannot
    read, which these are on purpose), opened in the same unit as the service opens it: the partner
    is told of every current member it may know at once, so no test waits on the segment worker."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        row = SegmentGrantRow(segment_id=segment_id, partner_id=partner_id, purpose=purpose.value, granted_at=now)
        unit.session.add(row)
        unit.session.flush()
        open_grant(unit.session, row.id, unit.kit.partner_pseudonyms, now=now)
        name = unit.session.scalar(select(SegmentRow.name).where(SegmentRow.id == segment_id))
        assert name is not None
        return Grant(row.id, segment_id, name, partner_id, purpose)


def revoke(runtime: Runtime, granted: Grant) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        grants.revoke_grant(unit, granted.id)


def enter(runtime: Runtime, segment_id: int, subject_ids: Sequence[int], *, told: Sequence[Grant] = ()) -> None:
    """The subjects enter the segment; each grant in ``told`` gets their enters, as pseudonyms."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        serialize_change_log_writes(unit.session)
        unit.session.execute(
            insert(SegmentMembershipRow),
            [{"segment_id": segment_id, "subject_id": s, "entered_at": now} for s in subject_ids],
        )
        for granted in told:
            # The server's segment worker may have told this grant already (a seeded segment keeps
            # its members, and a new grant or a new sharing consent tells them): never twice.
            already = set(
                unit.session.scalars(
                    select(GrantAudienceRow.subject_id).where(
                        GrantAudienceRow.grant_id == granted.id, GrantAudienceRow.subject_id.in_(subject_ids)
                    )
                )
            )
            fresh = [s for s in subject_ids if s not in already]
            pseudonyms = unit.kit.partner_pseudonyms.encode_many(granted.partner_id, fresh)
            for subject_id, pseudonym in zip(fresh, pseudonyms, strict=True):
                seq = unit.session.execute(
                    insert(GrantChangeRow)
                    .values(grant_id=granted.id, subject_id=subject_id, pseudonym=pseudonym, kind=ENTER, at=now)
                    .returning(GrantChangeRow.seq)
                ).scalar_one()
                unit.session.execute(
                    insert(GrantAudienceRow).values(grant_id=granted.id, subject_id=subject_id, entered_seq=seq)
                )


def leave(runtime: Runtime, segment_id: int, subject_ids: Sequence[int], *, told: Sequence[Grant] = ()) -> None:
    """The subjects leave the segment; each grant in ``told`` that had them gets an exit."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        serialize_change_log_writes(unit.session)
        unit.session.execute(
            update(SegmentMembershipRow)
            .where(
                SegmentMembershipRow.segment_id == segment_id,
                SegmentMembershipRow.subject_id.in_(subject_ids),
                SegmentMembershipRow.exited_at.is_(None),
            )
            .values(exited_at=now)
        )
        for granted in told:
            entered = unit.session.execute(
                select(GrantAudienceRow.subject_id, GrantChangeRow.pseudonym)
                .join(GrantChangeRow, GrantChangeRow.seq == GrantAudienceRow.entered_seq)
                .where(GrantAudienceRow.grant_id == granted.id, GrantAudienceRow.subject_id.in_(subject_ids))
                .order_by(GrantAudienceRow.subject_id)
            ).all()
            for subject_id, pseudonym in entered:
                unit.session.execute(
                    insert(GrantChangeRow).values(
                        grant_id=granted.id, subject_id=subject_id, pseudonym=pseudonym, kind=EXIT, at=now
                    )
                )
            unit.session.execute(
                delete(GrantAudienceRow).where(
                    GrantAudienceRow.grant_id == granted.id, GrantAudienceRow.subject_id.in_(subject_ids)
                )
            )
