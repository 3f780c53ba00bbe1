from __future__ import annotations

import strawberry
from strawberry.types import Info

from privacy.identifiers import InvalidIdentifier
from schema.consent.types import COMPLIANCE, ConsentRecord, ConsentState, IdentifierInput, SubjectConsent
from schema.context import Context
from server.consent import requests


@strawberry.type
class ConsentQueries:
    @strawberry.field(extensions=COMPLIANCE, description="Consent state and history, looked up by identifier.")
    async def consent(self, info: Info[Context, None], identifier: IdentifierInput) -> SubjectConsent:
        try:
            view = await info.context.run(lambda unit: requests.consent_of(unit, identifier=identifier.to_domain()))
        except InvalidIdentifier:
            return SubjectConsent(found=False, states=[], history=[])
        return SubjectConsent(
            found=view.found,
            states=[
                ConsentState(
                    purpose=key.purpose, partner_id=key.partner_id or None, granted=status.granted, since=status.since
                )
                for key, status in sorted(view.states.items(), key=lambda item: (item[0].purpose, item[0].partner_id))
            ],
            history=[
                ConsentRecord(
                    purpose=entry.key.purpose,
                    partner_id=entry.key.partner_id or None,
                    granted=entry.granted,
                    legal_basis=entry.legal_basis,
                    source=entry.source,
                    policy_version=entry.policy_version,
                    recorded_at=entry.recorded_at,
                )
                for entry in view.history
            ],
        )
