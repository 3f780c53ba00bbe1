from __future__ import annotations

from schema.access.types import ApiKey, Partner
from server.auth.api_keys import ApiKeyInfo
from server.partners.service import PartnerInfo


def to_partner(info: PartnerInfo) -> Partner:
    return Partner(id=info.id, name=info.name, purposes=list(info.purposes), created_at=info.created_at)


def to_api_key(info: ApiKeyInfo) -> ApiKey:
    return ApiKey(
        key_id=info.key_id,
        role=info.role,
        partner_id=info.partner_id,
        label=info.label,
        created_at=info.created_at,
        revoked_at=info.revoked_at,
    )
