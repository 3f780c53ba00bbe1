"""What a partner app reads: visitors, member pages and the change feed, as its own pseudonyms.

No field holds an internal subject id, an identifier or personal data; every answer is scoped
to the partner the API key is bound to. docs/partner-api.md says what each answer hides and why.
"""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from privacy.identifiers import IdentifierKind
from schema.access.types import PurposeType
from schema.consent.types import IdentifierKindType
from schema.errors import DomainError
from schema.pagination import PageInfo
from schema.permissions import requires
from server.auth.principal import Role

PARTNER = requires(Role.PARTNER)


@strawberry.input(description="An identifier this partner sent us itself (its user id, a device id, an email).")
class VisitorIdentifierInput:
    kind: IdentifierKindType  # type: ignore[valid-type]
    value: str

    def to_domain(self) -> tuple[IdentifierKind, str]:
        return IdentifierKind(self.kind), self.value


@strawberry.type(description="A granted segment, by name, and the purpose it is granted for.")
class GrantedSegment:
    name: str = strawberry.field(extensions=PARTNER)
    purpose: PurposeType = strawberry.field(extensions=PARTNER)  # type: ignore[valid-type]


@strawberry.type(description="A topic and its 0..1 score, as the visitor's profile computes it.")
class VisitorInterest:
    topic: str = strawberry.field(extensions=PARTNER)
    name: str = strawberry.field(extensions=PARTNER)
    score: float = strawberry.field(extensions=PARTNER)


@strawberry.type(
    description="What this partner may see of a visitor. An unknown visitor, one it never sent, one without "
    "consent, restricted or erased all get the same answer: no segment, no interest."
)
class Visitor:
    as_of: datetime = strawberry.field(extensions=PARTNER)
    segments: list[GrantedSegment] = strawberry.field(extensions=PARTNER)
    interests: list[VisitorInterest] = strawberry.field(extensions=PARTNER)


@strawberry.type
class SegmentMemberEdge:
    cursor: str = strawberry.field(extensions=PARTNER)
    node: str = strawberry.field(extensions=PARTNER, description="The member as this partner's pseudonym.")


@strawberry.type(description="A page of a granted segment's consenting members, in a fixed order on a snapshot.")
class SegmentMemberConnection:
    edges: list[SegmentMemberEdge] = strawberry.field(extensions=PARTNER)
    page_info: PageInfo = strawberry.field(extensions=PARTNER)
    errors: list[DomainError] = strawberry.field(extensions=PARTNER)


@strawberry.enum(
    description="ENTER: the visitor joined the segment for you; EXIT: it left (or withdrew, or was erased)."
)
class ChangeKind(enum.Enum):
    ENTER = "enter"
    EXIT = "exit"


@strawberry.type(description="One entry of the change feed.")
class SegmentChange:
    cursor: str = strawberry.field(extensions=PARTNER)
    kind: ChangeKind = strawberry.field(extensions=PARTNER)
    pseudonym: str = strawberry.field(extensions=PARTNER)
    segment: str = strawberry.field(extensions=PARTNER)
    purpose: PurposeType = strawberry.field(extensions=PARTNER)  # type: ignore[valid-type]
    at: datetime = strawberry.field(extensions=PARTNER)


@strawberry.type
class SegmentChangeEdge:
    cursor: str = strawberry.field(extensions=PARTNER)
    node: SegmentChange = strawberry.field(extensions=PARTNER)


@strawberry.type(
    description="Entries after a cursor, oldest first; pageInfo.endCursor is where to ask next (also when empty)."
)
class SegmentChangeConnection:
    edges: list[SegmentChangeEdge] = strawberry.field(extensions=PARTNER)
    page_info: PageInfo = strawberry.field(extensions=PARTNER)
    errors: list[DomainError] = strawberry.field(extensions=PARTNER)
