from __future__ import annotations

from datetime import datetime

import strawberry

from privacy.purposes import Purpose
from schema.errors import DomainError
from schema.permissions import requires
from schema.system.types import RoleType
from server.auth.principal import Role

PurposeType = strawberry.enum(Purpose, name="Purpose", description="A processing purpose (see docs/consent.md).")
ADMIN = requires(Role.ADMIN)


@strawberry.type
class Partner:
    id: int = strawberry.field(extensions=ADMIN)
    name: str = strawberry.field(extensions=ADMIN)
    purposes: list[PurposeType] = strawberry.field(extensions=ADMIN)  # type: ignore[valid-type]
    created_at: datetime = strawberry.field(extensions=ADMIN)


@strawberry.type
class ApiKey:
    key_id: str = strawberry.field(extensions=ADMIN)
    role: RoleType = strawberry.field(extensions=ADMIN)  # type: ignore[valid-type]
    partner_id: int | None = strawberry.field(extensions=ADMIN)
    label: str = strawberry.field(extensions=ADMIN)
    created_at: datetime = strawberry.field(extensions=ADMIN)
    revoked_at: datetime | None = strawberry.field(extensions=ADMIN)


@strawberry.type
class CreatePartnerPayload:
    partner: Partner | None = strawberry.field(extensions=ADMIN)
    errors: list[DomainError] = strawberry.field(extensions=ADMIN)


@strawberry.type
class CreateApiKeyPayload:
    key: ApiKey | None = strawberry.field(extensions=ADMIN)
    token: str | None = strawberry.field(
        extensions=ADMIN, description="The secret, shown this once; only its hash is stored."
    )
    errors: list[DomainError] = strawberry.field(extensions=ADMIN)


@strawberry.type
class RevokeApiKeyPayload:
    revoked: bool = strawberry.field(extensions=ADMIN)
    errors: list[DomainError] = strawberry.field(extensions=ADMIN)
