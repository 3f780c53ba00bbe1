from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.permissions import any_role
from schema.system.types import Viewer


@strawberry.type
class SystemQueries:
    @strawberry.field(extensions=any_role(), description="Who the API key belongs to.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        principal = info.context.caller
        return Viewer(key_id=principal.key_id, role=principal.role, partner_id=principal.partner_id)
