from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import cast

import strawberry
from strawberry.scalars import JSON

from schema.consent.types import IdentifierInput
from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role
from server.requests.lifecycle import RejectionReason, RequestKind, RequestStatus
from server.requests.records import RequestView

COMPLIANCE = requires(Role.COMPLIANCE)

RequestKindType = strawberry.enum(
    RequestKind,
    name="RequestKind",
    description="ERASURE (Art. 17), ACCESS (Art. 15/20), RECTIFICATION (Art. 16), RESTRICTION (Art. 18), "
    "OBJECTION (Art. 21).",
)
RequestStatusType = strawberry.enum(RequestStatus, name="RequestStatus")
RejectionReasonType = strawberry.enum(RejectionReason, name="RejectionReason")


@strawberry.enum(description="Which requests to list: OPEN (not closed), OVERDUE (open past their due date), ALL.")
class RequestListing(Enum):
    OPEN = "open"
    OVERDUE = "overdue"
    ALL = "all"


@strawberry.input(description="A request in the person's name; the identifier is kept only as its keyed hash.")
class FileRequestInput:
    kind: RequestKindType  # type: ignore[valid-type]
    identifier: IdentifierInput


@strawberry.input(description="A declared attribute's new value; a null value removes it.")
class AttributeChangeInput:
    field: str
    value: str | None = None


@strawberry.type(description="A data-subject request; it shows the kind of identifier it was filed with, never it.")
class DataSubjectRequest:
    id: int = strawberry.field(extensions=COMPLIANCE)
    kind: RequestKindType = strawberry.field(extensions=COMPLIANCE)  # type: ignore[valid-type]
    status: RequestStatusType = strawberry.field(extensions=COMPLIANCE)  # type: ignore[valid-type]
    identifier_kind: str = strawberry.field(extensions=COMPLIANCE)
    received_at: datetime = strawberry.field(extensions=COMPLIANCE)
    due_at: datetime = strawberry.field(extensions=COMPLIANCE, description="One month after receipt (Art. 12(3)).")
    overdue: bool = strawberry.field(extensions=COMPLIANCE)
    filed_by: str | None = strawberry.field(extensions=COMPLIANCE, description="The API key id that filed it.")
    verified_at: datetime | None = strawberry.field(extensions=COMPLIANCE)
    verified_by: str | None = strawberry.field(extensions=COMPLIANCE, description="The API key id that verified it.")
    verification_method: str | None = strawberry.field(extensions=COMPLIANCE)
    verification_reference: str | None = strawberry.field(extensions=COMPLIANCE)
    started_at: datetime | None = strawberry.field(extensions=COMPLIANCE)
    closed_at: datetime | None = strawberry.field(extensions=COMPLIANCE)
    rejection_reason: str | None = strawberry.field(extensions=COMPLIANCE)
    outcome: JSON = strawberry.field(extensions=COMPLIANCE, description="Counts of what was done; no personal data.")


@strawberry.type
class RequestPayload:
    request: DataSubjectRequest | None = strawberry.field(extensions=COMPLIANCE)
    errors: list[DomainError] = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class ExportPayload:
    request: DataSubjectRequest | None = strawberry.field(extensions=COMPLIANCE)
    document: JSON | None = strawberry.field(
        extensions=COMPLIANCE, description="Everything held on the person; layout in docs/access-export.md."
    )
    errors: list[DomainError] = strawberry.field(extensions=COMPLIANCE)


@strawberry.type(description="One rectified attribute, by kind of value only ('absent' or 'present').")
class AttributeChange:
    field: str = strawberry.field(extensions=COMPLIANCE)
    before: str = strawberry.field(extensions=COMPLIANCE)
    after: str = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class RectifyPayload:
    request: DataSubjectRequest | None = strawberry.field(extensions=COMPLIANCE)
    changes: list[AttributeChange] = strawberry.field(extensions=COMPLIANCE)
    errors: list[DomainError] = strawberry.field(extensions=COMPLIANCE)


@strawberry.type(description="Rows removed from one table by an erasure.")
class TableCount:
    table: str = strawberry.field(extensions=COMPLIANCE)
    rows: int = strawberry.field(extensions=COMPLIANCE)


@strawberry.type(description="What an erasure removed: counts only, no personal data, no subject id.")
class ErasureReceipt:
    id: int = strawberry.field(extensions=COMPLIANCE)
    request_id: int | None = strawberry.field(extensions=COMPLIANCE)
    reason: str = strawberry.field(extensions=COMPLIANCE)
    started_at: datetime = strawberry.field(extensions=COMPLIANCE)
    completed_at: datetime = strawberry.field(extensions=COMPLIANCE)
    subjects: int = strawberry.field(extensions=COMPLIANCE)
    keys_destroyed: int = strawberry.field(extensions=COMPLIANCE)
    identifiers_suppressed: int = strawberry.field(extensions=COMPLIANCE)
    rows_removed: list[TableCount] = strawberry.field(extensions=COMPLIANCE)


def to_request(view: RequestView) -> DataSubjectRequest:
    return DataSubjectRequest(
        id=view.id,
        kind=view.kind,
        status=view.status,
        identifier_kind=view.identifier_kind,
        received_at=view.received_at,
        due_at=view.due_at,
        overdue=view.overdue,
        filed_by=view.filed_by,
        verified_at=view.verified_at,
        verified_by=view.verified_by,
        verification_method=view.verification_method,
        verification_reference=view.verification_reference,
        started_at=view.started_at,
        closed_at=view.closed_at,
        rejection_reason=view.rejection_reason,
        outcome=cast(JSON, view.outcome),
    )
