"""The database belongs to one keyring: check it before anything is read or written.

Why: a database opened with another installation's keyring does not fail, it goes wrong
quietly — the same people stored again under new pseudonyms, audit entries signed with a key
that later reads as tampering. So every runtime (``serve``, each command, each worker) checks
the keyring against the fingerprints the database recorded (``privacy.keyring_fingerprint``)
and refuses, in one line naming where the keyring came from, one that does not match.

A database that has recorded nothing yet (new, or from before migration 0008) is bound to the
keyring that demonstrably opens what it already holds: one of its newest audit entries verifies
and one of its newest data keys unwraps, wherever there are some; nothing that fails to. An
empty database is bound to the first keyring that opens it. A rotation adds versions, which are
recorded as they are first seen, so retiring old ones later never locks the operator out.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from privacy.audit import AuditEntry, is_authentic
from privacy.field_crypto import DecryptionFailed, KeyWrapper
from privacy.keyring import KeyPurpose, Keyring, KeyringError
from privacy.keyring_fingerprint import KeyFingerprint, belongs, unrecorded
from server.storage.audit_store import newest_entries
from server.storage.base import utc_now
from server.storage.engine import WRITE_INTENT
from server.storage.keyring_fingerprints import (
    has_fingerprint_table,
    has_no_tables,
    holds_data,
    newest_wrapped_keys,
    read_fingerprints,
    record_fingerprints,
)

__all__ = [
    "KeyringMismatch",
    "check_keyring_before_migrating",
    "ensure_keyring_belongs",
    "refuse_new_keyring_for_populated_database",
]

# Newest audit entries and data keys tried when a database is first bound: one good one is enough,
# several so that a single forged or damaged row does not turn the right keyring away.
PROBES = 16
SEE_DOCS = "see docs/keys.md"


class KeyringMismatch(KeyringError):
    """The keyring cannot be shown to belong to the database; the message names where it came from."""


def ensure_keyring_belongs(sessions: sessionmaker[Session], keyring: Keyring, *, origin: str) -> None:
    """Refuse a keyring the database was not written with; record versions it has not seen yet."""
    with sessions() as session:
        connection = session.connection()
        if not has_fingerprint_table(connection):
            if has_no_tables(connection):
                return  # nothing migrated yet: `init` checks once it has
            raise KeyringMismatch(
                "the database is not at the latest migration, so the keyring cannot be checked against it; "
                "run `audience migrate`"
            )
        recorded = read_fingerprints(session)
        _refuse_foreign(session, keyring, recorded, origin)
        missing = unrecorded(recorded, keyring)
    if not missing:
        return
    with sessions.begin() as session:
        session.connection(execution_options={WRITE_INTENT: True})
        record_fingerprints(session, missing, utc_now())
    with sessions() as session:  # another process may have bound the database first
        if not belongs(read_fingerprints(session), keyring):
            raise KeyringMismatch(_mismatch(origin))


def check_keyring_before_migrating(engine: Engine, keyring: Keyring, *, origin: str) -> None:
    """The same refusal for a schema that may predate the fingerprints, recording nothing.

    A migration that rewrites stored values under the keyring (0007 hashes message ids) must never
    run under another installation's keyring: its work could not be undone by the right one.
    """
    with Session(engine) as session:
        connection = session.connection()
        if has_no_tables(connection):
            return
        recorded = read_fingerprints(session) if has_fingerprint_table(connection) else []
        _refuse_foreign(session, keyring, recorded, origin)


def refuse_new_keyring_for_populated_database(engine: Engine, keyring_path: str) -> None:
    """`init` creates a keyring only for a database that holds nothing: a new one could read none of it."""
    with engine.connect() as connection:
        populated = holds_data(connection)
    if populated:
        raise KeyringMismatch(
            f"the database already holds data, so `audience init` will not create a new keyring for it: restore "
            f"this installation's keyring from your backup to {keyring_path} (or point AUDIENCE_KEYRING_PATH or "
            f"AUDIENCE_KEYRING at it); {SEE_DOCS}"
        )


def _mismatch(origin: str) -> str:
    return (
        f"the keyring from {origin} does not belong to this database (it was written with another keyring): "
        f"use this installation's keyring, restored from your backup if it is lost; {SEE_DOCS}"
    )


def _refuse_foreign(session: Session, keyring: Keyring, recorded: list[KeyFingerprint], origin: str) -> None:
    """Against the fingerprints where there are some, else against the data the database holds."""
    if recorded and not belongs(recorded, keyring):
        raise KeyringMismatch(_mismatch(origin))
    if not recorded:
        _require_opens_stored_data(session, keyring, origin)


def _require_opens_stored_data(session: Session, keyring: Keyring, origin: str) -> None:
    verdicts = {_audit_entries_verify(session, keyring), _data_keys_unwrap(session, keyring)}
    if False in verdicts:
        raise KeyringMismatch(
            f"the keyring from {origin} does not open this database: its audit entries or data keys do not verify "
            f"under it; use this installation's keyring; {SEE_DOCS}"
        )
    if True not in verdicts and holds_data(session.connection()):
        raise KeyringMismatch(
            f"the keyring from {origin} cannot be checked against this database: it holds data but no audit entry "
            f"or data key to check with; {SEE_DOCS}"
        )


def _audit_entries_verify(session: Session, keyring: Keyring) -> bool | None:
    """True if one of the newest entries verifies, False if none does, None if none could be tried
    (no entries, or only under key versions this keyring does not hold)."""
    tried = False
    for entry in newest_entries(session, PROBES):
        if not isinstance(entry, AuditEntry):
            continue
        try:
            key = keyring.key(KeyPurpose.AUDIT, entry.key_version)
        except KeyringError:
            continue
        if is_authentic(entry, key):
            return True
        tried = True
    return False if tried else None


def _data_keys_unwrap(session: Session, keyring: Keyring) -> bool | None:
    """As for audit entries: one newest data key that unwraps is enough."""
    wrapper, tried = KeyWrapper(keyring), False
    for subject_id, wrapped in newest_wrapped_keys(session, PROBES):
        try:
            wrapper.unwrap(wrapped, subject_id)
        except KeyringError:
            continue
        except DecryptionFailed:
            tried = True
            continue
        return True
    return False if tried else None
