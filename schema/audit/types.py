from __future__ import annotations

from datetime import datetime

import strawberry

from schema.errors import DomainError
from schema.pagination import PageInfo
from schema.permissions import requires
from server.auth.principal import Role

COMPLIANCE = requires(Role.COMPLIANCE)


@strawberry.type(description="One non-PII detail of an audit entry.")
class AuditDetail:
    key: str = strawberry.field(extensions=COMPLIANCE)
    value: str | None = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class AuditEntry:
    seq: int = strawberry.field(extensions=COMPLIANCE)
    at: datetime = strawberry.field(extensions=COMPLIANCE)
    actor_key_id: str | None = strawberry.field(extensions=COMPLIANCE)
    actor_role: str = strawberry.field(extensions=COMPLIANCE)
    action: str = strawberry.field(extensions=COMPLIANCE)
    target: str | None = strawberry.field(extensions=COMPLIANCE)
    details: list[AuditDetail] = strawberry.field(extensions=COMPLIANCE)
    entry_hash: str = strawberry.field(extensions=COMPLIANCE, description="Hex HMAC chaining this entry.")


@strawberry.type
class AuditVerification:
    intact: bool = strawberry.field(extensions=COMPLIANCE)
    checked: int = strawberry.field(extensions=COMPLIANCE)
    first_bad_seq: int | None = strawberry.field(extensions=COMPLIANCE)
    problem: str | None = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class AuditEntryEdge:
    cursor: str = strawberry.field(extensions=COMPLIANCE)
    node: AuditEntry = strawberry.field(extensions=COMPLIANCE)


@strawberry.type(description="A page of audit entries, oldest first; errors name a refused argument, never its value.")
class AuditEntryConnection:
    edges: list[AuditEntryEdge] = strawberry.field(extensions=COMPLIANCE)
    page_info: PageInfo = strawberry.field(extensions=COMPLIANCE)
    errors: list[DomainError] = strawberry.field(extensions=COMPLIANCE)
