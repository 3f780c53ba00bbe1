from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.types import Info

from privacy.consent import ConsentError, ConsentPurpose, LegalBasis, PrivacySignal
from privacy.identifiers import InvalidIdentifier
from schema.consent.types import (
    COMPLIANCE,
    PrivacySignalInput,
    RecordConsentInput,
    RecordConsentPayload,
)
from schema.context import Context
from schema.errors import DomainError
from server.consent import requests
from server.consent.requests import ConsentOutcome
from server.runtime import UnitOfWork


async def _run_consent(info: Info[Context, None], work: Callable[[UnitOfWork], ConsentOutcome]) -> RecordConsentPayload:
    """Domain errors leave the unit of work by raising, so nothing it did is committed."""
    try:
        outcome = await info.context.run(work)
    except InvalidIdentifier as error:
        return RecordConsentPayload(
            recorded=False,
            suppression_lifted=False,
            errors=[DomainError(field="identifier", code=error.code, message=error.message)],
        )
    except ConsentError as error:
        return RecordConsentPayload(
            recorded=False,
            suppression_lifted=False,
            errors=[DomainError(field=None, code=error.code, message=error.message)],
        )
    return RecordConsentPayload(recorded=True, suppression_lifted=outcome.suppression_lifted, errors=[])


@strawberry.type
class ConsentMutations:
    @strawberry.mutation(extensions=COMPLIANCE, description="Append a grant or withdrawal to the consent ledger.")
    async def record_consent(self, info: Info[Context, None], input: RecordConsentInput) -> RecordConsentPayload:
        return await _run_consent(
            info,
            lambda unit: requests.record_consent(
                unit,
                identifier=input.identifier.to_domain(),
                purpose=ConsentPurpose(input.purpose),
                partner_id=input.partner_id,
                granted=input.granted,
                legal_basis=LegalBasis(input.legal_basis),
                source=input.source,
                policy_version=input.policy_version,
            ),
        )

    @strawberry.mutation(extensions=COMPLIANCE, description="Record GPC or an Art. 21 objection.")
    async def record_privacy_signal(self, info: Info[Context, None], input: PrivacySignalInput) -> RecordConsentPayload:
        return await _run_consent(
            info,
            lambda unit: requests.record_signal(
                unit, identifier=input.identifier.to_domain(), signal=PrivacySignal(input.signal), source=input.source
            ),
        )
