from __future__ import annotations

from datetime import datetime

import strawberry

from privacy.consent import ConsentPurpose, LegalBasis, PrivacySignal
from privacy.identifiers import IdentifierKind
from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role
from server.consent.requests import RawIdentifier

COMPLIANCE = requires(Role.COMPLIANCE)

IdentifierKindType = strawberry.enum(IdentifierKind, name="IdentifierKind")
ConsentPurposeType = strawberry.enum(
    ConsentPurpose, name="ConsentPurpose", description="A processing purpose, or SHARING with a named partner."
)
LegalBasisType = strawberry.enum(LegalBasis, name="LegalBasis")
PrivacySignalType = strawberry.enum(
    PrivacySignal, name="PrivacySignal", description="Recorded as a withdrawal of advertising."
)


@strawberry.input(description="An identifier as the person gave it; it is normalized and hashed, never stored.")
class IdentifierInput:
    kind: IdentifierKindType  # type: ignore[valid-type]
    value: str
    partner_id: int | None = strawberry.field(default=None, description="Required for PARTNER_USER_ID.")

    def to_domain(self) -> RawIdentifier:
        return RawIdentifier(IdentifierKind(self.kind), self.value, self.partner_id)


@strawberry.input
class RecordConsentInput:
    identifier: IdentifierInput
    purpose: ConsentPurposeType  # type: ignore[valid-type]
    granted: bool
    source: str = strawberry.field(description="Where it was collected, a label such as 'cmp:web'.")
    policy_version: str
    legal_basis: LegalBasisType = LegalBasis.CONSENT  # type: ignore[valid-type]
    partner_id: int | None = strawberry.field(default=None, description="The partner, for SHARING only.")


@strawberry.input
class PrivacySignalInput:
    identifier: IdentifierInput
    signal: PrivacySignalType  # type: ignore[valid-type]
    source: str = strawberry.field(description="Where the signal was seen, a label such as 'web:gpc-header'.")


@strawberry.type
class ConsentState:
    purpose: ConsentPurposeType = strawberry.field(extensions=COMPLIANCE)  # type: ignore[valid-type]
    partner_id: int | None = strawberry.field(extensions=COMPLIANCE)
    granted: bool = strawberry.field(extensions=COMPLIANCE)
    since: datetime = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class ConsentRecord:
    purpose: ConsentPurposeType = strawberry.field(extensions=COMPLIANCE)  # type: ignore[valid-type]
    partner_id: int | None = strawberry.field(extensions=COMPLIANCE)
    granted: bool = strawberry.field(extensions=COMPLIANCE)
    legal_basis: LegalBasisType = strawberry.field(extensions=COMPLIANCE)  # type: ignore[valid-type]
    source: str = strawberry.field(extensions=COMPLIANCE)
    policy_version: str = strawberry.field(extensions=COMPLIANCE)
    recorded_at: datetime = strawberry.field(extensions=COMPLIANCE)


@strawberry.type(description="Consent of the subject behind an identifier; found is false when nobody matches.")
class SubjectConsent:
    found: bool = strawberry.field(extensions=COMPLIANCE)
    states: list[ConsentState] = strawberry.field(extensions=COMPLIANCE)
    history: list[ConsentRecord] = strawberry.field(extensions=COMPLIANCE)


@strawberry.type
class RecordConsentPayload:
    recorded: bool = strawberry.field(extensions=COMPLIANCE)
    suppression_lifted: bool = strawberry.field(extensions=COMPLIANCE)
    errors: list[DomainError] = strawberry.field(extensions=COMPLIANCE)
