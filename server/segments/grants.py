"""Granting a segment to a partner for one purpose, and revoking it.

A grant is refused, with the reason, when the partner is not declared for the purpose, or when
the segment (through every segment it names) uses data the purpose does not allow
(``server.segments.purposes``). Once granted, the partner is told the members who consent to
the purpose and to sharing with it (``open_grant``); revoking stops every partner read at once,
because every read checks ``revoked_at`` in the statement that reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.runtime import UnitOfWork
from server.segments.definitions import SegmentError, rules_by_name, segment_graph, segment_row
from server.segments.memberships import close_grant, open_grant
from server.segments.purposes import data_used, forbidden_uses
from server.segments.rules import Rule
from server.storage.tables import PartnerRow, SegmentGrantRow, SegmentRow

__all__ = ["GrantView", "grant_segment", "list_grants", "revoke_grant"]


@dataclass(frozen=True, slots=True)
class GrantView:
    id: int
    segment: str
    partner: str
    purpose: Purpose
    granted_at: datetime
    revoked_at: datetime | None


def _partner(session: Session, name: str) -> PartnerRow:
    row = session.scalar(select(PartnerRow).where(PartnerRow.name == name))
    if row is None:
        raise SegmentError("UNKNOWN_PARTNER", "no partner has this name")
    return row


def grant_segment(unit: UnitOfWork, *, segment: str, partner: str, purpose: Purpose) -> GrantView:
    session, now = unit.session, unit.clock()
    granted, partner_row = segment_row(session, segment), _partner(session, partner)
    if purpose.value not in partner_row.purposes:
        raise SegmentError("PURPOSE_NOT_DECLARED", f"the partner is not declared for {purpose.value}")
    rules = rules_by_name(session)
    if not _readable_through(segment, rules, segment_graph(session)):
        raise SegmentError(
            "RULE_UNREADABLE", "this segment, or one it reads, has a rule this version cannot read; save it again"
        )
    if refused := forbidden_uses(purpose, data_used(rules[segment], rules)):
        uses = ", ".join(use.value for use in refused)
        raise SegmentError("PURPOSE_FORBIDS_DATA", f"{purpose.value} does not allow the data this segment uses: {uses}")
    active = session.scalar(
        select(SegmentGrantRow.id).where(
            SegmentGrantRow.segment_id == granted.id,
            SegmentGrantRow.partner_id == partner_row.id,
            SegmentGrantRow.purpose == purpose.value,
            SegmentGrantRow.revoked_at.is_(None),
        )
    )
    if active is not None:
        raise SegmentError("ALREADY_GRANTED", "this segment is already granted to the partner for this purpose")
    row = SegmentGrantRow(
        segment_id=granted.id,
        partner_id=partner_row.id,
        purpose=purpose.value,
        granted_at=now,
        granted_by=unit.actor.key_id,
    )
    session.add(row)
    session.flush()
    told = open_grant(session, row.id, unit.kit.partner_pseudonyms, now=now)
    unit.audit(
        "segment.grant",
        target=f"segment:{segment}",
        details={"partner": partner, "purpose": purpose.value, "grant": row.id, "members_told": told},
    )
    return _view(row, segment, partner)


def _readable_through(segment: str, rules: Mapping[str, Rule], graph: Mapping[str, frozenset[str]]) -> bool:
    """Whether the rules of ``segment`` and of every segment it reads are readable: the purpose
    check must see all the data a grant hands over, or refuse it."""
    seen, pending = {segment}, [segment]
    while pending:
        name = pending.pop()
        if name not in rules:
            return False
        for following in graph.get(name, frozenset()) - seen:
            seen.add(following)
            pending.append(following)
    return True


def revoke_grant(unit: UnitOfWork, grant_id: int) -> GrantView:
    session, now = unit.session, unit.clock()
    row = session.get(SegmentGrantRow, grant_id)
    if row is None or row.revoked_at is not None:
        raise SegmentError("NOT_FOUND", "no active grant has this id")
    row.revoked_at, row.revoked_by = now, unit.actor.key_id
    session.flush()
    close_grant(session, grant_id)
    segment = session.scalar(select(SegmentRow.name).where(SegmentRow.id == row.segment_id)) or ""
    partner = session.scalar(select(PartnerRow.name).where(PartnerRow.id == row.partner_id)) or ""
    unit.audit("segment.revoke", target=f"segment:{segment}", details={"partner": partner, "grant": grant_id})
    return _view(row, segment, partner)


def list_grants(session: Session, *, segment: str | None = None, active_only: bool = False) -> list[GrantView]:
    query = (
        select(SegmentGrantRow, SegmentRow.name, PartnerRow.name)
        .join(SegmentRow, SegmentRow.id == SegmentGrantRow.segment_id)
        .join(PartnerRow, PartnerRow.id == SegmentGrantRow.partner_id)
        .order_by(SegmentGrantRow.id)
    )
    if segment is not None:
        query = query.where(SegmentRow.name == segment)
    if active_only:
        query = query.where(SegmentGrantRow.revoked_at.is_(None))
    return [_view(row, segment_name, partner_name) for row, segment_name, partner_name in session.execute(query)]


def _view(row: SegmentGrantRow, segment: str, partner: str) -> GrantView:
    return GrantView(row.id, segment, partner, Purpose(row.purpose), row.granted_at, row.revoked_at)
