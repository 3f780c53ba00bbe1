"""Append-only, hash-chained audit log.

Threat model: someone with write access to the database (a rogue operator, a stolen backup
restored and edited) edits, deletes or reorders entries to hide what was done with personal
data. Each entry's hash is an HMAC under the audit key over its content and the previous
entry's hash, so without the key the chain cannot be recomputed, and verification names the
first entry that no longer fits. It does not stop deletion of the newest entries by someone
who also rewinds the stored head; export the head hash periodically to an external witness
(see docs/compliance.md). Entries carry pseudonymous targets and non-PII details only: the log
is read by auditors and must not become a PII store of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from privacy.keyring import KeyPurpose, Keyring, VersionedKey

GENESIS_HASH = bytes(32)
DetailValue = str | int | bool | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What a caller asks to record; the chain fields are added when it is appended."""

    actor_key_id: str | None
    actor_role: str
    action: str
    target: str | None = None
    details: Mapping[str, DetailValue] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor_key_id: str | None
    actor_role: str
    action: str
    target: str | None
    details: Mapping[str, DetailValue]
    key_version: int
    prev_hash: bytes
    entry_hash: bytes


class AuditStore(Protocol):
    """Persistence seam: the server implements it over SQL, tests may use an in-memory list."""

    def lock_head(self) -> tuple[int, bytes]:
        """Return (last seq, last hash), holding a lock until the caller's transaction ends."""

    def append(self, entry: AuditEntry) -> None:
        """Store the entry and move the head to it, inside the locked transaction."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def entry_hash(
    key: VersionedKey,
    *,
    seq: int,
    at: datetime,
    record: AuditRecord,
    prev_hash: bytes,
) -> bytes:
    """HMAC over a canonical JSON encoding, so both dialects and every reader agree byte for byte."""
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor_key_id": record.actor_key_id,
            "actor_role": record.actor_role,
            "action": record.action,
            "target": record.target,
            "details": dict(record.details or {}),
            "key_version": key.version,
            "prev": prev_hash.hex(),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode("utf-8")
    return hmac.new(key.secret, canonical, hashlib.sha256).digest()


def append_record(store: AuditStore, keyring: Keyring, clock: Clock, record: AuditRecord) -> AuditEntry:
    """Append one record to the chain inside the caller's transaction."""
    last_seq, last_hash = store.lock_head()
    key = keyring.current_key(KeyPurpose.AUDIT)
    seq, at = last_seq + 1, clock()
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor_key_id=record.actor_key_id,
        actor_role=record.actor_role,
        action=record.action,
        target=record.target,
        details=dict(record.details or {}),
        key_version=key.version,
        prev_hash=last_hash,
        entry_hash=entry_hash(key, seq=seq, at=at, record=record, prev_hash=last_hash),
    )
    store.append(entry)
    return entry


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


def verify_chain(
    entries: Iterable[AuditEntry],
    keyring: Keyring,
    *,
    head: tuple[int, bytes] | None = None,
) -> ChainVerdict:
    """Walk entries in seq order; name the first one edited, missing or out of place.

    ``head`` is the stored (seq, hash) of the newest entry; when given, a log cut short at
    its end is caught too.
    """
    expected_seq, expected_prev = 1, GENESIS_HASH
    checked = 0
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainVerdict(checked, expected_seq, "entry missing or out of sequence")
        if entry.prev_hash != expected_prev:
            return ChainVerdict(checked, entry.seq, "entry does not follow its predecessor (removed or reordered)")
        key = keyring.key(KeyPurpose.AUDIT, entry.key_version)
        record = AuditRecord(entry.actor_key_id, entry.actor_role, entry.action, entry.target, entry.details)
        recomputed = entry_hash(key, seq=entry.seq, at=entry.at, record=record, prev_hash=entry.prev_hash)
        if not hmac.compare_digest(recomputed, entry.entry_hash):
            return ChainVerdict(checked, entry.seq, "entry content was altered")
        checked += 1
        expected_seq, expected_prev = entry.seq + 1, entry.entry_hash
    if head is not None and (head[0] != expected_seq - 1 or head[1] != expected_prev):
        return ChainVerdict(checked, expected_seq, "newest entries are missing (log truncated)")
    return ChainVerdict(checked)
