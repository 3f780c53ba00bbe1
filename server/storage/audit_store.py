"""SQL persistence for the audit chain (the ``privacy.audit.AuditStore`` seam)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from privacy.audit import AuditEntry
from server.storage.tables import AuditEntryRow, AuditHeadRow

HEAD_ID = 1
READ_BATCH = 5_000


class SqlAuditStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def lock_head(self) -> tuple[int, bytes]:
        """An UPDATE first: it takes the row lock on PostgreSQL and the write lock on SQLite,
        so a concurrent appender waits instead of reading the same head and forking the chain."""
        row = self._session.execute(
            update(AuditHeadRow)
            .where(AuditHeadRow.id == HEAD_ID)
            .values(seq=AuditHeadRow.seq + 1)
            .returning(AuditHeadRow.seq, AuditHeadRow.entry_hash)
        ).one()
        return row.seq - 1, row.entry_hash

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
            update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(entry_hash=entry.entry_hash)
        )
        self._session.flush()


def read_head(session: Session) -> tuple[int, bytes]:
    row = session.execute(select(AuditHeadRow.seq, AuditHeadRow.entry_hash).where(AuditHeadRow.id == HEAD_ID)).one()
    return row.seq, row.entry_hash


def iter_entries(
    session: Session, *, after_seq: int = 0, limit: int | None = None, until_seq: int | None = None
) -> Iterator[AuditEntry]:
    """Stream entries in seq order, in keyset-paginated batches so a long log fits in memory."""
    remaining = limit
    while remaining is None or remaining > 0:
        batch_size = READ_BATCH if remaining is None else min(READ_BATCH, remaining)
        query = select(AuditEntryRow).where(AuditEntryRow.seq > after_seq)
        if until_seq is not None:
            query = query.where(AuditEntryRow.seq <= until_seq)
        rows = session.scalars(query.order_by(AuditEntryRow.seq).limit(batch_size)).all()
        if not rows:
            return
        for row in rows:
            yield _to_entry(row)
        after_seq = rows[-1].seq
        if remaining is not None:
            remaining -= len(rows)
        session.expunge_all()


def _to_entry(row: AuditEntryRow) -> AuditEntry:
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
