"""Pages of a granted segment's members, as this partner's pseudonyms, stable while it changes.

The first page fixes a snapshot ``S``: the latest ``grant_changes.seq`` of the grant. The members
at ``S`` are the audience rows entered at or before ``S`` (still in, since an exit deletes the row)
and the subjects whose first change after ``S`` is an exit (they were in at ``S`` and left since).
Pages walk that set in subject-id order; every cursor carries ``S`` and the last member's
pseudonym, sealed for this partner (``server.partners.cursors``), so a member entering or leaving
meanwhile neither shifts a page nor appears twice. One statement per page, set-based.

Consent is read live on every page, never frozen in the snapshot: a member shows only while it
grants the grant's purpose and sharing with this partner and is under no restriction, so a
withdrawal or an erasure hides it from the next page on (it may then be missing from a walk that
started before; it is never shown after). Pseudonyms are encoded with the partner's current key,
as the change feed's are when written; after a rotation of the pseudonym root the feed keeps the
ones it told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentPurpose
from privacy.partner_pseudonyms import PartnerPseudonym
from privacy.purposes import Purpose
from server.partners.cursors import member_cursor, read_member_cursor
from server.partners.grants import BAD_CURSOR, PartnerReadError, PartnerScope, grant_named
from server.privacy_kit import PrivacyKit
from server.segments.exits import EXIT
from server.storage.restrictions import unrestricted

__all__ = ["MAX_PAGE", "Member", "MemberPage", "segment_members"]

MAX_PAGE: Final = 1_000
DEFAULT_PAGE: Final = 100

_SNAPSHOT = text("SELECT MAX(seq) FROM grant_changes WHERE grant_id = :grant")
_MEMBERS_AT = text(
    "SELECT m.subject_id FROM ("
    " SELECT a.subject_id FROM grant_audience a"
    " WHERE a.grant_id = :grant AND a.entered_seq <= :snapshot AND a.subject_id > :after"
    " UNION"
    " SELECT c.subject_id FROM grant_changes c"
    " WHERE c.grant_id = :grant AND c.seq > :snapshot AND c.subject_id > :after"
    " GROUP BY c.subject_id"
    " HAVING MIN(c.seq) = MIN(CASE WHEN c.kind = :exit THEN c.seq END)"
    ") m"
    " WHERE EXISTS (SELECT 1 FROM consent_state p WHERE p.subject_id = m.subject_id AND p.purpose = :purpose"
    " AND p.partner_id = :no_partner AND p.granted)"
    " AND EXISTS (SELECT 1 FROM consent_state s WHERE s.subject_id = m.subject_id AND s.purpose = :sharing"
    " AND s.partner_id = :partner AND s.granted)"
    f" AND {unrestricted('m.subject_id')}"
    " ORDER BY m.subject_id LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class Member:
    pseudonym: PartnerPseudonym
    cursor: str


@dataclass(frozen=True, slots=True)
class MemberPage:
    segment: str
    purpose: Purpose
    members: tuple[Member, ...]
    has_next_page: bool


def segment_members(
    session: Session,
    kit: PrivacyKit,
    *,
    partner: PartnerScope,
    segment: str,
    purpose: Purpose | None = None,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
) -> MemberPage:
    """One page of ``segment``'s members after the cursor ``after`` (the first page without one)."""
    if not 1 <= first <= MAX_PAGE:
        raise PartnerReadError("INVALID_FIRST", f"first must be between 1 and {MAX_PAGE}", field="first")
    grant = grant_named(session, partner, segment, purpose)
    latest = int(session.scalar(_SNAPSHOT, {"grant": grant.grant_id}) or 0)
    codec, sealer = kit.partner_pseudonyms, kit.token_sealer
    if after is None:
        snapshot, after_subject = latest, 0
    else:
        position = read_member_cursor(
            after, sealer=sealer, codec=codec, partner_id=partner.partner_id, grant_id=grant.grant_id
        )
        if position.snapshot > latest:
            raise PartnerReadError(BAD_CURSOR, "after is not a cursor this connection returned", field="after")
        snapshot, after_subject = position.snapshot, position.after_subject
    found = [
        int(subject)
        for (subject,) in session.execute(
            _MEMBERS_AT,
            {
                "grant": grant.grant_id,
                "snapshot": snapshot,
                "after": after_subject,
                "exit": EXIT,
                "purpose": grant.purpose.value,
                "no_partner": NO_PARTNER,
                "sharing": ConsentPurpose.SHARING.value,
                "partner": partner.partner_id,
                "limit": first + 1,
            },
        )
    ]
    shown = found[:first]
    pseudonyms = codec.encode_many(partner.partner_id, shown)
    partner_id = partner.partner_id
    members = tuple(
        Member(p, member_cursor(sealer, partner_id=partner_id, grant_id=grant.grant_id, snapshot=snapshot, last=p))
        for p in pseudonyms
    )
    return MemberPage(segment=grant.segment, purpose=grant.purpose, members=members, has_next_page=len(found) > first)
