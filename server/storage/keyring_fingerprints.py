"""SQL for the keyring fingerprints and for the stored data a keyring is checked against."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, exists, inspect, select
from sqlalchemy.orm import Session

from privacy.field_crypto import WrappedKey
from privacy.keyring import KeyPurpose
from privacy.keyring_fingerprint import KeyFingerprint
from server.storage.tables import (
    AuditEntryRow,
    IdentityRow,
    KeyringFingerprintRow,
    SubjectKeyRow,
    SubjectRow,
    SuppressionRow,
)
from server.storage.upsert import insert_ignoring_conflicts, table_of

# Any row in one of these means the database holds someone's data, or a record of what was done.
_DATA_TABLES = (KeyringFingerprintRow, AuditEntryRow, SubjectRow, IdentityRow, SuppressionRow)


def has_fingerprint_table(connection: Connection) -> bool:
    return inspect(connection).has_table(KeyringFingerprintRow.__tablename__)


def has_no_tables(connection: Connection) -> bool:
    """A database nothing was ever migrated into (``init`` is about to)."""
    return not inspect(connection).get_table_names()


def holds_data(connection: Connection) -> bool:
    """Whatever revision the schema is at: a table that does not exist yet holds nothing."""
    present = set(inspect(connection).get_table_names())
    return any(
        connection.scalar(select(exists().select_from(table_of(model))))
        for model in _DATA_TABLES
        if model.__tablename__ in present
    )


def read_fingerprints(session: Session) -> list[KeyFingerprint]:
    rows = session.execute(
        select(KeyringFingerprintRow.purpose, KeyringFingerprintRow.version, KeyringFingerprintRow.fingerprint)
    ).all()
    return [KeyFingerprint(KeyPurpose(purpose), version, bytes(digest)) for purpose, version, digest in rows]


def record_fingerprints(session: Session, fingerprints: Sequence[KeyFingerprint], now: datetime) -> None:
    """A version recorded meanwhile by another process is left as it is; the caller reads back and compares."""
    insert_ignoring_conflicts(
        session,
        KeyringFingerprintRow,
        [
            {"purpose": fp.purpose.value, "version": fp.version, "fingerprint": fp.digest, "recorded_at": now}
            for fp in fingerprints
        ],
    )


def newest_wrapped_keys(session: Session, count: int) -> list[tuple[int, WrappedKey]]:
    rows = session.execute(
        select(SubjectKeyRow.subject_id, SubjectKeyRow.kek_version, SubjectKeyRow.wrapped_dek)
        .order_by(SubjectKeyRow.subject_id.desc())
        .limit(count)
    ).all()
    return [(subject_id, WrappedKey(version, bytes(blob))) for subject_id, version, blob in rows]
