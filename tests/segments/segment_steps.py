"""Steps the evaluation tests take: a segment or a grant as the marketer's code will store them,
and what the tables then hold (members, what a partner was told)."""

from __future__ import annotations

from sqlalchemy import select

from privacy.consent import ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier, record_consent
from server.partners.service import create_partner
from server.runtime import Runtime
from server.segments.memberships import open_grant
from server.segments.rule_json import to_json
from server.segments.rules import Rule
from server.segments.store import SegmentStatus
from server.segments.timing import time_dependent
from server.storage.tables import GrantAudienceRow, GrantChangeRow, SegmentGrantRow, SegmentMembershipRow, SegmentRow


def add_segment(runtime: Runtime, name: str, rule: Rule | dict[str, object]) -> int:
    """A pending segment (``rule``: a rule, or a stored form as it is, even a broken one)."""
    now = runtime.clock()
    stored = rule if isinstance(rule, dict) else to_json(rule)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        row = SegmentRow(
            name=name,
            rule=stored,
            rule_text=name,
            depends_on=[],
            time_dependent=False if isinstance(rule, dict) else time_dependent(rule),
            status=SegmentStatus.PENDING.value,
            stale=False,
            member_count=0,
            created_at=now,
            updated_at=now,
        )
        unit.session.add(row)
        unit.session.flush()
        return row.id


def add_partner(runtime: Runtime, name: str, purposes: tuple[Purpose, ...] = (Purpose.ADVERTISING,)) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        return create_partner(unit.session, name=name, purposes=purposes, now=unit.clock()).id


def add_grant(runtime: Runtime, segment_id: int, partner_id: int, purpose: Purpose = Purpose.ADVERTISING) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        row = SegmentGrantRow(
            segment_id=segment_id, partner_id=partner_id, purpose=purpose.value, granted_at=unit.clock()
        )
        unit.session.add(row)
        unit.session.flush()
        open_grant(unit.session, row.id, unit.kit.partner_pseudonyms, now=unit.clock())
        return row.id


def consent(
    runtime: Runtime, email: str, purpose: ConsentPurpose, *, partner_id: int | None = None, granted: bool = True
) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        record_consent(
            unit,
            identifier=RawIdentifier(IdentifierKind.EMAIL, email),
            purpose=purpose,
            partner_id=partner_id,
            granted=granted,
            legal_basis=LegalBasis.CONSENT,
            source="cmp:web",
            policy_version="v1",
        )


def members(runtime: Runtime, segment_id: int) -> set[int]:
    with runtime.sessions() as session:
        return set(
            session.scalars(
                select(SegmentMembershipRow.subject_id).where(
                    SegmentMembershipRow.segment_id == segment_id, SegmentMembershipRow.exited_at.is_(None)
                )
            )
        )


def segment(runtime: Runtime, segment_id: int) -> SegmentRow:
    with runtime.sessions() as session:
        row = session.get(SegmentRow, segment_id)
        assert row is not None
        session.expunge(row)
        return row


def audience(runtime: Runtime, grant_id: int) -> set[int]:
    with runtime.sessions() as session:
        return set(session.scalars(select(GrantAudienceRow.subject_id).where(GrantAudienceRow.grant_id == grant_id)))


def changes(runtime: Runtime, grant_id: int | None = None) -> list[tuple[int, int, int | None, str, str]]:
    """(seq, grant, subject, kind, pseudonym) in seq order."""
    c = GrantChangeRow
    query = select(c.seq, c.grant_id, c.subject_id, c.kind, c.pseudonym)
    if grant_id is not None:
        query = query.where(GrantChangeRow.grant_id == grant_id)
    with runtime.sessions() as session:
        return [tuple(row) for row in session.execute(query.order_by(GrantChangeRow.seq))]  # type: ignore[misc]
