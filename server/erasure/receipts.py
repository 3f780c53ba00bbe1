"""Erasure receipts: written in the erasure's transaction, read back for the compliance team."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.erasure import ErasureReceipt
from server.storage.tables import ErasureReceiptRow

__all__ = ["read_receipt", "receipts_of_request", "write_receipt"]


def write_receipt(
    session: Session,
    *,
    request_id: int | None,
    reason: str,
    started_at: datetime,
    completed_at: datetime,
    rows_removed: Mapping[str, int],
    subjects: int,
    keys_destroyed: int,
    identifiers_suppressed: int,
) -> ErasureReceipt:
    row = ErasureReceiptRow(
        request_id=request_id,
        reason=reason,
        started_at=started_at,
        completed_at=completed_at,
        subjects=subjects,
        keys_destroyed=keys_destroyed,
        identifiers_suppressed=identifiers_suppressed,
        rows_removed=dict(rows_removed),
    )
    session.add(row)
    session.flush()
    return _receipt(row)


def read_receipt(session: Session, receipt_id: int) -> ErasureReceipt | None:
    row = session.get(ErasureReceiptRow, receipt_id)
    return None if row is None else _receipt(row)


def receipts_of_request(session: Session, request_id: int) -> list[ErasureReceipt]:
    """Every erasure run for a request, oldest first (a rerun after a crash adds one)."""
    rows = session.scalars(
        select(ErasureReceiptRow).where(ErasureReceiptRow.request_id == request_id).order_by(ErasureReceiptRow.id)
    )
    return [_receipt(row) for row in rows]


def _receipt(row: ErasureReceiptRow) -> ErasureReceipt:
    return ErasureReceipt(
        id=row.id,
        request_id=row.request_id,
        reason=row.reason,
        started_at=row.started_at,
        completed_at=row.completed_at,
        subjects=row.subjects,
        keys_destroyed=row.keys_destroyed,
        identifiers_suppressed=row.identifiers_suppressed,
        rows_removed={str(table): int(count) for table, count in row.rows_removed.items()},
    )
