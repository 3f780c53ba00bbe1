from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.access.convert import to_api_key, to_partner
from schema.access.types import ADMIN, ApiKey, Partner
from schema.context import Context
from server.auth import api_keys
from server.partners import service as partners


@strawberry.type
class AccessQueries:
    @strawberry.field(extensions=ADMIN, description="Every partner.")
    async def partners(self, info: Info[Context, None]) -> list[Partner]:
        found = await info.context.run(lambda unit: partners.list_partners(unit.session))
        return [to_partner(partner) for partner in found]

    @strawberry.field(extensions=ADMIN, description="Every API key, without secrets.")
    async def api_keys(self, info: Info[Context, None]) -> list[ApiKey]:
        found = await info.context.run(lambda unit: api_keys.list_keys(unit.session))
        return [to_api_key(key) for key in found]
