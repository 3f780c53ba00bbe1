"""Subjects: find or create the pseudonymous subject behind an identifier, and its encrypted PII.

These are the single-record paths (compliance requests, consent from a CMP); bulk ingestion
has its own columnar path that writes the same rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from privacy.field_crypto import SubjectCipher, WrappedKey, new_data_key
from privacy.identifiers import NormalizedIdentifier
from server.privacy_kit import PrivacyKit
from server.storage.locks import serialize_identity_writes
from server.storage.tables import IdentityRow, SubjectKeyRow, SubjectPiiRow, SubjectRow
from server.storage.upsert import upsert

SUBJECT_ID_BITS = 63


def new_subject_id() -> int:
    """Random, so an id reveals neither the person nor when or in which order they were first seen."""
    return secrets.randbits(SUBJECT_ID_BITS) or 1


def find_subject(session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit) -> int | None:
    """Match under every identifier-key version, so lookups keep working across HMAC key rotation.

    Where we and partners each linked the identifier, our own link answers (docs/ingestion.md);
    otherwise the link of the partner with the smallest id.
    """
    candidates = [(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)]
    return session.scalar(
        select(IdentityRow.subject_id)
        .where(IdentityRow.kind == identifier.kind.value)
        .where(tuple_(IdentityRow.key_version, IdentityRow.pseudonym).in_(candidates))
        .order_by(IdentityRow.partner_id.is_not(None), IdentityRow.partner_id)
        .limit(1)
    )


def create_subject(
    session: Session, *, identifiers: Sequence[NormalizedIdentifier], kit: PrivacyKit, now: datetime
) -> int:
    serialize_identity_writes(session)
    subject_id = new_subject_id()
    session.add(SubjectRow(id=subject_id, created_at=now, status="active"))
    session.flush()
    wrapped = kit.key_wrapper.wrap(new_data_key(), subject_id)
    session.add(
        SubjectKeyRow(subject_id=subject_id, kek_version=wrapped.kek_version, wrapped_dek=wrapped.blob, created_at=now)
    )
    for identifier in identifiers:
        pseudonym = kit.pseudonymizer.pseudonym(identifier)
        session.add(
            IdentityRow(
                subject_id=subject_id,
                origin_subject_id=subject_id,
                kind=identifier.kind.value,
                key_version=pseudonym.key_version,
                pseudonym=pseudonym.digest,
                partner_id=identifier.partner_id,
                first_seen=now,
            )
        )
    session.flush()
    return subject_id


def find_or_create_subject(
    session: Session, identifier: NormalizedIdentifier, kit: PrivacyKit, now: datetime
) -> tuple[int, bool]:
    serialize_identity_writes(session)  # before the lookup, or two callers could both find nothing
    found = find_subject(session, identifier, kit)
    if found is not None:
        return found, False
    return create_subject(session, identifiers=[identifier], kit=kit, now=now), True


def subject_cipher(session: Session, subject_id: int, kit: PrivacyKit) -> SubjectCipher:
    row = session.get(SubjectKeyRow, subject_id)
    if row is None:
        raise LookupError("subject has no data key (erased or unknown)")
    dek = kit.key_wrapper.unwrap(WrappedKey(row.kek_version, row.wrapped_dek), subject_id)
    return SubjectCipher(subject_id, dek)


def write_pii(session: Session, subject_id: int, fields: Mapping[str, str], kit: PrivacyKit, now: datetime) -> None:
    cipher = subject_cipher(session, subject_id, kit)
    rows = [
        {"subject_id": subject_id, "field": name, "ciphertext": cipher.encrypt(name, value), "updated_at": now}
        for name, value in fields.items()
    ]
    upsert(session, SubjectPiiRow, rows, keys=["subject_id", "field"], update=["ciphertext", "updated_at"])


def read_pii(session: Session, subject_id: int, kit: PrivacyKit) -> dict[str, str]:
    """Callers audit every use: reading PII is an auditable act."""
    cipher = subject_cipher(session, subject_id, kit)
    rows = session.execute(
        select(SubjectPiiRow.field, SubjectPiiRow.ciphertext).where(SubjectPiiRow.subject_id == subject_id)
    ).all()
    return {row.field: cipher.decrypt(row.field, row.ciphertext) for row in rows}


def delete_pii_field(session: Session, subject_id: int, field: str) -> None:
    session.execute(delete(SubjectPiiRow).where(SubjectPiiRow.subject_id == subject_id, SubjectPiiRow.field == field))
