from __future__ import annotations

import strawberry
from strawberry.types import Info

from privacy.purposes import Purpose
from schema.access.convert import to_api_key, to_partner
from schema.access.types import (
    ADMIN,
    CreateApiKeyPayload,
    CreatePartnerPayload,
    PurposeType,
    RevokeApiKeyPayload,
)
from schema.context import Context
from schema.errors import DomainError
from schema.system.types import RoleType
from server.auth import api_keys
from server.auth.api_keys import ApiKeyError, ApiKeyInfo
from server.partners import service as partners
from server.partners.service import PartnerError
from server.runtime import UnitOfWork


@strawberry.type
class AccessMutations:
    @strawberry.mutation(extensions=ADMIN, description="Register a partner and the purposes it may use data for.")
    async def create_partner(
        self,
        info: Info[Context, None],
        name: str,
        purposes: list[PurposeType],  # type: ignore[valid-type]
    ) -> CreatePartnerPayload:
        def work(unit: UnitOfWork) -> CreatePartnerPayload:
            try:
                partner = partners.create_partner(
                    unit.session, name=name, purposes=[Purpose(p) for p in purposes], now=unit.clock()
                )
            except PartnerError as error:
                return CreatePartnerPayload(
                    partner=None, errors=[DomainError(field="name", code=error.code, message=error.message)]
                )
            unit.audit(
                "partner.create", target=f"partner:{partner.id}", details={"purposes": ",".join(partner.purposes)}
            )
            return CreatePartnerPayload(partner=to_partner(partner), errors=[])

        return await info.context.run(work)

    @strawberry.mutation(extensions=ADMIN, description="Issue an API key; the token is returned only here.")
    async def create_api_key(
        self,
        info: Info[Context, None],
        role: RoleType,  # type: ignore[valid-type]
        label: str,
        partner_id: int | None = None,
    ) -> CreateApiKeyPayload:
        def work(unit: UnitOfWork) -> CreateApiKeyPayload:
            try:
                issued = api_keys.create_key(
                    unit.session, role=role, label=label, partner_id=partner_id, now=unit.clock()
                )
            except ApiKeyError as error:
                return CreateApiKeyPayload(
                    key=None, token=None, errors=[DomainError(field=None, code=error.code, message=error.message)]
                )
            unit.audit("api_key.create", target=f"api_key:{issued.key_id}", details={"role": issued.role.value})
            key = ApiKeyInfo(issued.key_id, issued.role, issued.partner_id, label, unit.clock(), None)
            return CreateApiKeyPayload(key=to_api_key(key), token=issued.token, errors=[])

        return await info.context.run(work)

    @strawberry.mutation(
        extensions=ADMIN,
        description=(
            "Revoke an API key: refused from the next request, and on an open WebSocket from its next operation."
        ),
    )
    async def revoke_api_key(self, info: Info[Context, None], key_id: str) -> RevokeApiKeyPayload:
        def work(unit: UnitOfWork) -> RevokeApiKeyPayload:
            if not api_keys.revoke_key(unit.session, key_id=key_id, now=unit.clock()):
                return RevokeApiKeyPayload(
                    revoked=False,
                    errors=[DomainError(field="keyId", code="NOT_FOUND", message="no live key has this id")],
                )
            unit.audit("api_key.revoke", target=f"api_key:{key_id}")
            return RevokeApiKeyPayload(revoked=True, errors=[])

        payload = await info.context.run(work)
        if payload.revoked:
            info.context.forget_key(key_id)
        return payload
