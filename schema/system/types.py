from __future__ import annotations

import strawberry

from schema.permissions import any_role
from server.auth.principal import Role

RoleType = strawberry.enum(Role, name="Role", description="What a caller may do; fixed per API key.")


@strawberry.type(description="The caller, as its API key identifies it.")
class Viewer:
    key_id: str = strawberry.field(extensions=any_role())
    role: RoleType = strawberry.field(extensions=any_role())  # type: ignore[valid-type]
    partner_id: int | None = strawberry.field(extensions=any_role())
