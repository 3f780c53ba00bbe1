"""SQL persistence for the audit chain (the ``privacy.audit.AuditStore`` seam).

Rows are read as an attacker may have left them: a column set to a value of the wrong type
(SQLite stores any value in any column) comes back as ``UnreadableEntry`` so that verification
names it, instead of failing the whole read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from privacy.audit import AuditEntry, UnreadableEntry
from server.storage.tables import AuditEntryRow, AuditHeadRow

HEAD_ID = 1
READ_BATCH = 5_000
TARGET_CHUNK = 1_000
# What the column types raise on a stored value they cannot decode.
_UNDECODABLE = (ValueError, TypeError, OverflowError)

StoredEntry = AuditEntry | UnreadableEntry


class SqlAuditStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def lock_head(self) -> tuple[int, bytes]:
        """An UPDATE first: it takes the row lock on PostgreSQL and the write lock on SQLite,
        so a concurrent appender waits instead of reading the same head and forking the chain."""
        row = self._session.execute(
            update(AuditHeadRow)
            .where(AuditHeadRow.id == HEAD_ID)
            .values(seq=AuditHeadRow.seq)
            .returning(AuditHeadRow.seq, AuditHeadRow.entry_hash)
        ).one()
        return row.seq, row.entry_hash

    def next_free_seq(self, after: int) -> int:
        """One primary-key probe; only when rows were forged past the head, the first gap after them."""
        candidate = after + 1
        if self._session.scalar(select(AuditEntryRow.seq).where(AuditEntryRow.seq == candidate)) is None:
            return candidate
        taken, following = aliased(AuditEntryRow), aliased(AuditEntryRow)
        first_free = self._session.scalar(
            select(func.min(taken.seq) + 1).where(
                taken.seq >= candidate, ~exists().where(following.seq == taken.seq + 1)
            )
        )
        return int(first_free or candidate)  # never None: the candidate row itself is counted

    def append(self, entry: AuditEntry) -> None:
        self._session.add(
            AuditEntryRow(
                seq=entry.seq,
                at=entry.at,
                actor_key_id=entry.actor_key_id,
                actor_role=entry.actor_role,
                action=entry.action,
                target=entry.target,
                details=dict(entry.details),
                key_version=entry.key_version,
                prev_hash=entry.prev_hash,
                entry_hash=entry.entry_hash,
            )
        )
        self._session.execute(
            update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(seq=entry.seq, entry_hash=entry.entry_hash)
        )
        self._session.flush()


def read_head(session: Session) -> tuple[int, bytes]:
    row = session.execute(select(AuditHeadRow.seq, AuditHeadRow.entry_hash).where(AuditHeadRow.id == HEAD_ID)).one()
    return row.seq, row.entry_hash


def iter_entries(session: Session, *, after_seq: int = 0, limit: int | None = None) -> Iterator[StoredEntry]:
    """Stream entries in seq order, in keyset-paginated batches so a long log fits in memory."""
    remaining = limit
    while remaining is None or remaining > 0:
        batch_size = READ_BATCH if remaining is None else min(READ_BATCH, remaining)
        query = select(AuditEntryRow).where(AuditEntryRow.seq > after_seq).order_by(AuditEntryRow.seq)
        entries = read_entries(session, query.limit(batch_size))
        if not entries:
            return
        yield from entries
        after_seq = entries[-1].seq
        if remaining is not None:
            remaining -= len(entries)
        session.expunge_all()


def newest_entries(session: Session, count: int) -> list[StoredEntry]:
    """The last ``count`` entries by seq, newest first."""
    return read_entries(session, select(AuditEntryRow).order_by(AuditEntryRow.seq.desc()).limit(count))


def entries_for_targets(session: Session, targets: Sequence[str]) -> list[StoredEntry]:
    """Every entry whose target is one of ``targets``, in seq order: through the target's index, so
    what was done to one person is found without reading the log (an access export, an auditor)."""
    wanted = sorted(set(targets))
    found: list[StoredEntry] = []
    for start in range(0, len(wanted), TARGET_CHUNK):
        chunk = wanted[start : start + TARGET_CHUNK]
        found.extend(read_entries(session, select(AuditEntryRow).where(AuditEntryRow.target.in_(chunk))))
    return sorted(found, key=lambda entry: entry.seq)


def read_entries(session: Session, query: Select[AuditEntryRow]) -> list[StoredEntry]:
    """The rows ``query`` selects, decoded: the whole batch at once, row by row only when some row
    does not decode (that one comes back as ``UnreadableEntry``)."""
    try:
        return [_to_entry(row) for row in session.scalars(query).all()]
    except _UNDECODABLE:
        session.expunge_all()
    seqs = session.scalars(query.with_only_columns(AuditEntryRow.seq)).all()
    return [_read_one(session, seq) for seq in seqs]


def _read_one(session: Session, seq: int) -> StoredEntry:
    try:
        row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.seq == seq)).one()
        return _to_entry(row)
    except _UNDECODABLE:
        return UnreadableEntry(seq)


def _to_entry(row: AuditEntryRow) -> StoredEntry:
    if not (isinstance(row.at, datetime) and isinstance(row.details, dict) and isinstance(row.key_version, int)):
        return UnreadableEntry(row.seq)
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor_key_id=row.actor_key_id,
        actor_role=row.actor_role,
        action=row.action,
        target=row.target,
        details=row.details,
        key_version=row.key_version,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )
