"""What a partner may read: its active grants, found by segment name, and the errors of its reads.

A partner names a segment by its name. A segment that exists but is not granted to this partner
(or only under a revoked grant, or for a purpose the partner no longer declares) answers exactly
like a segment that does not exist, ``SEGMENT_NOT_FOUND``: a partner learns nothing of the
segments other partners receive.

Every partner read (``lookup``, ``members``, ``feed``) starts from ``PartnerScope``, built from the
API key's principal as the HTTP layer authenticated it, never from an argument the caller sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.auth.principal import Principal, Role

__all__ = [
    "BAD_CURSOR",
    "PURPOSE_REQUIRED",
    "SEGMENT_NOT_FOUND",
    "GrantedSegment",
    "PartnerReadError",
    "PartnerScope",
    "active_grants",
    "grant_named",
    "partner_scope",
]

SEGMENT_NOT_FOUND: Final = "SEGMENT_NOT_FOUND"
BAD_CURSOR: Final = "BAD_CURSOR"
PURPOSE_REQUIRED: Final = "PURPOSE_REQUIRED"
_PURPOSES: Final = frozenset(purpose.value for purpose in Purpose)


class PartnerReadError(Exception):
    """A refused partner read: ``code`` is stable, ``message`` names the argument and the rule,
    never the value sent (a cursor, a segment name)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class PartnerScope:
    """The partner a key is bound to and the purposes it declared when it was registered."""

    partner_id: int
    purposes: frozenset[Purpose]


def partner_scope(principal: Principal) -> PartnerScope:
    """Only a partner key has a scope; the field permissions let no other role get this far."""
    if principal.role is not Role.PARTNER or principal.partner_id is None:
        raise PermissionError("partner reads need a partner key")
    declared = frozenset(Purpose(p) for p in principal.partner_purposes if p in _PURPOSES)
    return PartnerScope(partner_id=principal.partner_id, purposes=declared)


@dataclass(frozen=True, slots=True)
class GrantedSegment:
    grant_id: int
    segment: str
    purpose: Purpose


_ACTIVE_GRANTS = text(
    "SELECT g.id, s.name, g.purpose FROM segment_grants g JOIN segments s ON s.id = g.segment_id "
    "WHERE g.partner_id = :partner AND g.revoked_at IS NULL ORDER BY s.name, g.purpose"
)


def active_grants(session: Session, scope: PartnerScope) -> list[GrantedSegment]:
    """The partner's grants in force, for purposes it still declares, by segment name."""
    return [
        GrantedSegment(int(grant_id), name, Purpose(purpose))
        for grant_id, name, purpose in session.execute(_ACTIVE_GRANTS, {"partner": scope.partner_id})
        if purpose in scope.purposes
    ]


def grant_named(session: Session, scope: PartnerScope, segment: str, purpose: Purpose | None = None) -> GrantedSegment:
    """The grant through which this partner reads ``segment``.

    A segment may be granted to one partner for several purposes (one audience each): then the
    purpose must be named, ``PURPOSE_REQUIRED``; the partner sees its own grants anyway.
    """
    matching: Sequence[GrantedSegment] = [
        grant
        for grant in active_grants(session, scope)
        if grant.segment == segment and (purpose is None or grant.purpose is purpose)
    ]
    if not matching:
        raise PartnerReadError(SEGMENT_NOT_FOUND, "no segment of this name is granted to this partner", field="segment")
    if len(matching) > 1:
        raise PartnerReadError(
            PURPOSE_REQUIRED, "the segment is granted for several purposes: name one", field="purpose"
        )
    return matching[0]
