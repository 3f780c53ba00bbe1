"""KEK rotation: add a key-encryption-key version, re-wrap every subject's DEK under it, retire old ones.

Why re-wrap rather than re-encrypt: field ciphertexts are under the subjects' DEKs, which do
not change, so a rotation costs one small AES-GCM operation per subject and never touches
``subject_pii``. Why batches committed one by one: a rotation of millions of subjects must
survive an interruption; rows still under an older version are exactly the work left, so
running the rotation again finishes it, and retiring a version is refused while any row
names it.

A row whose DEK does not unwrap (altered, or wrapped under a version missing from the
keyring) is skipped and counted, never rewritten: it stays under its old version, which
therefore cannot be retired until someone looks at it.

The re-wrap runs in units of work of its own (one per batch), so it is a job, not a service:
the functions taking a ``Session`` never commit; ``rewrap_outdated`` owns the transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from privacy.field_crypto import DecryptionFailed, KeyWrapper, WrappedKey
from privacy.keyring import KeyPurpose, Keyring, KeyringError, load_keyring_file, write_keyring_file
from server.auth.principal import Actor
from server.runtime import Runtime
from server.storage.tables import SubjectKeyRow
from server.storage.upsert import table_of

__all__ = [
    "REWRAP_BATCH",
    "RewrapBatch",
    "RewrapTotals",
    "add_kek_version",
    "count_outdated",
    "deks_per_kek_version",
    "retire_kek_version",
    "rewrap_batch",
    "rewrap_outdated",
]

REWRAP_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    """One batch: rows read, rows re-wrapped, rows refused; ``last_subject_id`` is the resume cursor."""

    scanned: int
    rewrapped: int
    unreadable: int
    last_subject_id: int


@dataclass(frozen=True, slots=True)
class RewrapTotals:
    rewrapped: int
    unreadable: int
    batches: int


def deks_per_kek_version(session: Session) -> dict[int, int]:
    """How many wrapped DEKs each KEK version holds (versions with none are absent)."""
    rows = session.execute(select(SubjectKeyRow.kek_version, func.count()).group_by(SubjectKeyRow.kek_version)).all()
    return {int(version): int(count) for version, count in rows}


def count_outdated(session: Session, current_version: int) -> int:
    """DEKs not yet under ``current_version``: the work an unfinished rotation has left."""
    return int(
        session.scalar(
            select(func.count()).select_from(SubjectKeyRow).where(SubjectKeyRow.kek_version != current_version)
        )
        or 0
    )


def rewrap_batch(session: Session, wrapper: KeyWrapper, *, after_subject_id: int, limit: int) -> RewrapBatch:
    """Re-wrap up to ``limit`` outdated DEKs with subject ids above ``after_subject_id``.

    One SELECT and one executemany UPDATE. The UPDATE matches the version it read, so a row
    changed meanwhile (erased, or re-wrapped by a concurrent run) is left alone.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    current = wrapper.current_version
    rows = session.execute(
        select(SubjectKeyRow.subject_id, SubjectKeyRow.kek_version, SubjectKeyRow.wrapped_dek)
        .where(SubjectKeyRow.kek_version != current, SubjectKeyRow.subject_id > after_subject_id)
        .order_by(SubjectKeyRow.subject_id)
        .limit(limit)
    ).all()
    if not rows:
        return RewrapBatch(scanned=0, rewrapped=0, unreadable=0, last_subject_id=after_subject_id)
    changes: list[dict[str, object]] = []
    unreadable = 0
    for subject_id, kek_version, blob in rows:
        try:
            rewrapped = wrapper.rewrap(WrappedKey(kek_version, bytes(blob)), subject_id)
        except (DecryptionFailed, KeyringError):
            unreadable += 1
            continue
        changes.append(
            {
                "b_subject_id": subject_id,
                "b_old_version": kek_version,
                "b_version": rewrapped.kek_version,
                "b_blob": rewrapped.blob,
            }
        )
    if changes:
        table = table_of(SubjectKeyRow)
        session.execute(
            update(table)
            .where(table.c.subject_id == bindparam("b_subject_id"), table.c.kek_version == bindparam("b_old_version"))
            .values(kek_version=bindparam("b_version"), wrapped_dek=bindparam("b_blob")),
            changes,
        )
    return RewrapBatch(
        scanned=len(rows), rewrapped=len(changes), unreadable=unreadable, last_subject_id=int(rows[-1].subject_id)
    )


def rewrap_outdated(
    runtime: Runtime,
    actor: Actor,
    *,
    batch_size: int = REWRAP_BATCH,
    on_batch: Callable[[RewrapBatch], None] | None = None,
) -> RewrapTotals:
    """Re-wrap every DEK not under the runtime's current KEK, each batch in its own transaction.

    Interrupting it loses at most the batch in flight; calling it again carries on.
    """
    wrapper = runtime.kit.key_wrapper
    cursor, rewrapped, unreadable, batches = 0, 0, 0, 0
    while True:
        with runtime.unit_of_work(actor) as unit:
            batch = rewrap_batch(unit.session, wrapper, after_subject_id=cursor, limit=batch_size)
        if batch.scanned == 0:
            return RewrapTotals(rewrapped=rewrapped, unreadable=unreadable, batches=batches)
        cursor = batch.last_subject_id
        rewrapped += batch.rewrapped
        unreadable += batch.unreadable
        batches += 1
        if on_batch is not None:
            on_batch(batch)


def add_kek_version(path: Path) -> Keyring:
    """Add a KEK version to the keyring file and make it current; written atomically, mode 0600."""
    rotated = load_keyring_file(path).with_new_version(KeyPurpose.KEK)
    write_keyring_file(path, rotated, replace=True)
    return rotated


def retire_kek_version(path: Path, version: int) -> Keyring:
    """Remove a KEK version from the keyring file; the caller has checked that no DEK needs it."""
    pruned = load_keyring_file(path).without_version(KeyPurpose.KEK, version)
    write_keyring_file(path, pruned, replace=True)
    return pruned
