"""Consent requests from the compliance team: by identifier, looked up through its keyed hash.

The identifier is normalized and hashed, never stored or logged in clear; a source or policy
version is kept as written only if declared, otherwise as a keyed hash (``privacy.labels``). The
subject is created on first sight so that consent collected before any event is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from sqlalchemy.orm import Session

from privacy.consent import (
    ConsentEntry,
    ConsentKey,
    ConsentPurpose,
    ConsentStatus,
    LegalBasis,
    PrivacySignal,
)
from privacy.identifiers import IdentifierKind, normalize, normalize_column
from server.consent import service
from server.privacy_kit import PrivacyKit
from server.profiles import store as profiles
from server.runtime import UnitOfWork
from server.storage.lookup import select_where_in
from server.storage.tables import IdentityRow
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
    source, policy_version = unit.kit.labels.kept(source), unit.kit.labels.kept(policy_version)
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
    if granted and purpose is ConsentPurpose.PROFILING:
        profiles.catch_up(unit.session, [subject_id], unit.profiles.interests)
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
    source = unit.kit.labels.kept(source)
    service.require_partner(unit.session, identifier.partner_id)
    normalized = normalize(identifier.kind, identifier.value, partner_id=identifier.partner_id, rules=unit.kit.rules)
    subject_id, _created = find_or_create_subject(unit.session, normalized, unit.kit, unit.clock())
    entry = service.record_signal(unit.session, subject_id=subject_id, signal=signal, source=source, now=unit.clock())
    unit.audit("consent.signal", target=f"subject:{subject_id}", details={"signal": signal.value, "source": source})
    return ConsentOutcome(entry, suppression_lifted=False)


def find_subjects(
    session: Session, *, kind: IdentifierKind, values: pl.Series, kit: PrivacyKit, partner_id: int | None = None
) -> pl.Series:
    """The bulk form of ``find_subject``: each value's subject id, null where unknown or invalid.

    The same keyed pseudonyms under every identifier-key version, so lookups survive rotation,
    but each distinct value is normalized once and hashed with the Pseudonymizer's bulk method,
    and the digests are matched in one lookup per key version. It never creates a subject.
    """
    normalized = normalize_column(kind, values, kit.rules).alias("value")
    distinct = normalized.drop_nulls().unique(maintain_order=True).to_list()
    versions = kit.pseudonymizer.versions
    hashed = pl.DataFrame(
        {
            "value": distinct * len(versions),
            "key_version": [version for version in versions for _ in distinct],
            "digest": [
                digest
                for version in versions
                for digest in kit.pseudonymizer.digest_many(kind, distinct, partner_id, key_version=version)
            ],
        },
        schema={"value": pl.String, "key_version": pl.Int64, "digest": pl.Binary},
    )
    found = [
        row
        for version in versions
        for row in select_where_in(
            session,
            f"SELECT key_version, pseudonym, subject_id, partner_id FROM {IdentityRow.__tablename__} "
            "WHERE kind = ? AND key_version = ? AND pseudonym {in}",
            hashed.filter(pl.col("key_version") == version)["digest"].to_list(),
            params=(kind.value, version),
        )
    ]
    known = pl.DataFrame(
        found,
        schema={"key_version": pl.Int64, "digest": pl.Binary, "subject_id": pl.Int64, "partner_id": pl.Int64},
        orient="row",
    )
    # Our own link first, then the current key, as ``find_subject`` would match it; one subject per value.
    subject_of = (
        hashed.join(known, on=["key_version", "digest"], how="inner")
        .sort(
            pl.col("partner_id"),
            pl.col("key_version").replace_strict(versions, list(range(len(versions)))),
            nulls_last=False,
        )
        .unique(subset="value", keep="first")
        .select("value", "subject_id")
    )
    return normalized.to_frame().join(subject_of, on="value", how="left", maintain_order="left")["subject_id"]


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
