"""Consent requests from the compliance team: by identifier, looked up through its keyed hash.

The identifier is normalized and hashed, never stored or logged in clear; the subject is
created on first sight so that consent collected before any event is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from privacy.consent import (
    ConsentEntry,
    ConsentKey,
    ConsentPurpose,
    ConsentStatus,
    LegalBasis,
    PrivacySignal,
)
from privacy.identifiers import IdentifierKind, normalize
from server.consent import service
from server.runtime import UnitOfWork
from server.subjects.service import find_or_create_subject, find_subject
from server.suppression import service as suppression


@dataclass(frozen=True, slots=True)
class RawIdentifier:
    kind: IdentifierKind
    value: str
    partner_id: int | None = None


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    entry: ConsentEntry
    suppression_lifted: bool


@dataclass(frozen=True, slots=True)
class ConsentView:
    found: bool
    states: dict[ConsentKey, ConsentStatus]
    history: list[ConsentEntry]


def record_consent(
    unit: UnitOfWork,
    *,
    identifier: RawIdentifier,
    purpose: ConsentPurpose,
    partner_id: int | None,
    granted: bool,
    legal_basis: LegalBasis,
    source: str,
    policy_version: str,
) -> ConsentOutcome:
    """An explicit grant also lifts suppression of this identifier (the person consented anew).

    Everything that can be refused is checked before the first write.
    """
    key = ConsentKey(purpose, partner_id or 0)
    service.check_labels(source=source, policy_version=policy_version)
    service.require_partner(unit.session, partner_id)
    service.require_partner(unit.session, identifier.partner_id)
    normalized = normalize(identifier.kind, identifier.value, partner_id=identifier.partner_id, rules=unit.kit.rules)
    now = unit.clock()
    lifted = granted and suppression.lift(unit.session, normalized, unit.kit)
    subject_id, _created = find_or_create_subject(unit.session, normalized, unit.kit, now)
    entry = service.record(
        unit.session,
        subject_id=subject_id,
        key=key,
        granted=granted,
        legal_basis=legal_basis,
        source=source,
        policy_version=policy_version,
        now=now,
    )
    unit.audit(
        "consent.grant" if granted else "consent.withdraw",
        target=f"subject:{subject_id}",
        details={
            "purpose": purpose.value,
            "partner_id": key.partner_id or None,
            "source": source,
            "policy_version": policy_version,
            "suppression_lifted": lifted,
        },
    )
    return ConsentOutcome(entry, lifted)


def record_signal(unit: UnitOfWork, *, identifier: RawIdentifier, signal: PrivacySignal, source: str) -> ConsentOutcome:
    service.check_labels(source=source, policy_version=signal.value)
    service.require_partner(unit.session, identifier.partner_id)
    normalized = normalize(identifier.kind, identifier.value, partner_id=identifier.partner_id, rules=unit.kit.rules)
    subject_id, _created = find_or_create_subject(unit.session, normalized, unit.kit, unit.clock())
    entry = service.record_signal(unit.session, subject_id=subject_id, signal=signal, source=source, now=unit.clock())
    unit.audit("consent.signal", target=f"subject:{subject_id}", details={"signal": signal.value, "source": source})
    return ConsentOutcome(entry, suppression_lifted=False)


def consent_of(unit: UnitOfWork, *, identifier: RawIdentifier) -> ConsentView:
    normalized = normalize(identifier.kind, identifier.value, partner_id=identifier.partner_id, rules=unit.kit.rules)
    subject_id = find_subject(unit.session, normalized, unit.kit)
    unit.audit(
        "consent.read",
        target=None if subject_id is None else f"subject:{subject_id}",
        details={"found": subject_id is not None},
    )
    if subject_id is None:
        return ConsentView(found=False, states={}, history=[])
    return ConsentView(
        found=True,
        states=service.current_state(unit.session, subject_id),
        history=service.history(unit.session, subject_id),
    )
