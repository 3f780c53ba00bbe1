"""A person's own ``profiling`` consent, granted or withdrawn through the consent service (as the
compliance API records it), by email: the step most profile tests take."""

from __future__ import annotations

from privacy.consent import ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier, record_consent
from server.runtime import Runtime


def record_profiling(runtime: Runtime, email: str, *, granted: bool, source: str = "cmp:web") -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        record_consent(
            unit,
            identifier=RawIdentifier(IdentifierKind.EMAIL, email),
            purpose=ConsentPurpose.PROFILING,
            partner_id=None,
            granted=granted,
            legal_basis=LegalBasis.CONSENT,
            source=source,
            policy_version="v1",
        )
