"""A person's own consent, granted or withdrawn through the consent service (as the compliance API
records it): ``record_profiling`` by email is the step most profile tests take, ``record_purpose``
the general form."""

from __future__ import annotations

from privacy.consent import ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier, record_consent
from server.runtime import Runtime


def record_purpose(
    runtime: Runtime,
    identifier: RawIdentifier,
    purpose: ConsentPurpose,
    *,
    granted: bool = True,
    source: str = "cmp:web",
    policy_version: str = "v1",
) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        record_consent(
            unit,
            identifier=identifier,
            purpose=purpose,
            partner_id=None,
            granted=granted,
            legal_basis=LegalBasis.CONSENT,
            source=source,
            policy_version=policy_version,
        )


def record_profiling(runtime: Runtime, email: str, *, granted: bool, source: str = "cmp:web") -> None:
    record_purpose(
        runtime, RawIdentifier(IdentifierKind.EMAIL, email), ConsentPurpose.PROFILING, granted=granted, source=source
    )
