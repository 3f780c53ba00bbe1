"""Reading erasure receipts back: what a regulator is shown."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.storage.tables import ErasureReceiptRow


def receipts_of(session: Session, request_id: int) -> list[ErasureReceiptRow]:
    """One receipt per run of the erasure: a rerun after a completed one would add a zero receipt."""
    return list(
        session.scalars(
            select(ErasureReceiptRow).where(ErasureReceiptRow.request_id == request_id).order_by(ErasureReceiptRow.id)
        )
    )
