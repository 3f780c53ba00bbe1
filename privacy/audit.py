"""Append-only, hash-chained audit log.

Threat model: someone with write access to the database (a rogue operator, a stolen backup
restored and edited) edits, deletes or reorders entries to hide what was done with personal
data. Each entry's hash is an HMAC under the audit key over its content and the previous
entry's hash, so without the key the chain cannot be recomputed, and verification names the
first entry that no longer fits, whatever was done to it: content or key version edited, a column
set to a value of the wrong type, a row removed, moved, or forged past the newest one. A forged
row never joins the chain: the next append chains to the last entry the server itself wrote (the
stored head) and takes the first free sequence number, so a forgery cannot stop the server from
auditing, and verification keeps naming it. It does not stop deletion of the newest entries by
someone who also rewinds the stored head; export the head hash periodically to an external
witness (see docs/compliance.md). Entries carry pseudonymous targets and non-PII details only: the log
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

from privacy.keyring import KeyPurpose, Keyring, KeyringError, VersionedKey

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


@dataclass(frozen=True, slots=True)
class UnreadableEntry:
    """A stored entry whose columns no longer decode: one was edited to a value of the wrong type."""

    seq: int


class AuditStore(Protocol):
    """Persistence seam: the server implements it over SQL, tests may use an in-memory list."""

    def lock_head(self) -> tuple[int, bytes]:
        """Return (seq, hash) of the last entry appended through this seam (the stored head),
        holding a lock until the caller's transaction ends."""

    def next_free_seq(self, after: int) -> int:
        """The first sequence number above ``after`` that no stored row holds: ``after + 1``
        unless rows were forged past the head."""

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
    seq, at = store.next_free_seq(last_seq), clock()
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
    entries: Iterable[AuditEntry | UnreadableEntry],
    keyring: Keyring,
    *,
    head: tuple[int, bytes] | None = None,
) -> ChainVerdict:
    """Walk entries in seq order; name the first one edited, forged, missing or out of place.

    ``head`` is the stored (seq, hash) of the newest entry the server wrote; when given, a log
    cut short at its end is caught too. Entries past it are checked like any other: they are
    either appends made while we read, which verify, or forgeries, which do not.
    """
    expected_seq, expected_prev = 1, GENESIS_HASH
    head_reached = head is None or head[0] == 0
    checked = 0
    for entry in entries:
        if isinstance(entry, UnreadableEntry):
            return ChainVerdict(checked, entry.seq, "entry cannot be read: a column holds a value of the wrong type")
        flaw = _flaw(entry, keyring, expected_seq, expected_prev)
        if flaw is not None:
            return ChainVerdict(checked, *flaw)
        if head is not None and entry.seq == head[0]:
            if not hmac.compare_digest(entry.entry_hash, head[1]):
                return ChainVerdict(checked, entry.seq, "entry is not the one the stored head names")
            head_reached = True
        checked += 1
        expected_seq, expected_prev = entry.seq + 1, entry.entry_hash
    if not head_reached:
        return ChainVerdict(checked, expected_seq, "newest entries are missing (log truncated)")
    return ChainVerdict(checked)


def is_authentic(entry: AuditEntry, key: VersionedKey) -> bool:
    """The entry's HMAC recomputes under ``key``, the keyring's version it names: nobody without
    that key wrote or changed it."""
    record = AuditRecord(entry.actor_key_id, entry.actor_role, entry.action, entry.target, entry.details)
    recomputed = entry_hash(key, seq=entry.seq, at=entry.at, record=record, prev_hash=entry.prev_hash)
    return hmac.compare_digest(recomputed, entry.entry_hash)


def _flaw(entry: AuditEntry, keyring: Keyring, expected_seq: int, expected_prev: bytes) -> tuple[int, str] | None:
    """(seq to name, problem), or None when the entry is authentic and in its place.

    Authenticity first: a row that does not verify on its own is named itself, wherever it
    sits; only an authentic one out of place means entries around it were removed or moved.
    """
    try:
        key = keyring.key(KeyPurpose.AUDIT, entry.key_version)
    except KeyringError:
        return entry.seq, "entry names an audit key version the keyring does not hold (edited, or the version removed)"
    if not is_authentic(entry, key):
        return entry.seq, "entry content was altered, or the entry was forged"
    if entry.seq != expected_seq:
        return expected_seq, "entry missing or out of sequence"
    if entry.prev_hash != expected_prev:
        return entry.seq, "entry does not follow its predecessor (removed or reordered)"
    return None
