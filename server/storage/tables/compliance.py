"""Data-subject requests, erasure receipts and processing restrictions (Art. 15-21).

A request names its person only by the keyed hash of the identifier it was filed with (the same
HMAC the suppression list keeps), never by a subject id: subjects are found when the request is
executed, so a request outlives an erasure without pointing at anyone. A receipt counts what an
erasure removed, per table, and holds no subject id either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SubjectRequestRow(Base):
    __tablename__ = "subject_requests"
    __table_args__ = (
        Index("ix_subject_requests_status_due", "status", "due_at"),
        Index("ix_subject_requests_identifier", "identifier_pseudonym"),
    )

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    identifier_kind: Mapped[str] = mapped_column(String(24))
    identifier_key_version: Mapped[int] = mapped_column(SmallInteger)
    identifier_pseudonym: Mapped[bytes] = mapped_column(LargeBinary(32))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    filed_by: Mapped[str | None] = mapped_column(String(32))
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verified_by: Mapped[str | None] = mapped_column(String(32))
    verification_method: Mapped[str | None] = mapped_column(String(32))
    verification_reference: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    rejection_reason: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ErasureReceiptRow(Base):
    """What one erasure removed: counts per table, no subject id, no identifier."""

    __tablename__ = "erasure_receipts"

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(String(24))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    subjects: Mapped[int] = mapped_column(Integer)
    keys_destroyed: Mapped[int] = mapped_column(Integer)
    identifiers_suppressed: Mapped[int] = mapped_column(Integer)
    rows_removed: Mapped[dict[str, Any]] = mapped_column(JSON)


class SubjectRestrictionRow(Base):
    """Art. 18: while a row exists the subject's data is kept but not processed or served."""

    __tablename__ = "subject_restrictions"

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    since: Mapped[datetime] = mapped_column(UtcDateTime)
