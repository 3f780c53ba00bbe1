"""Per-subject data keys, encrypted PII, the consent ledger and its derived state, suppressions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SubjectKeyRow(Base):
    """The subject's data key, wrapped by a KEK; deleting this row crypto-shreds the subject."""

    __tablename__ = "subject_keys"

    subject_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    kek_version: Mapped[int] = mapped_column(SmallInteger, index=True)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SubjectPiiRow(Base):
    """One encrypted field per row; the ciphertext is bound to (subject, field) by its AAD."""

    __tablename__ = "subject_pii"

    subject_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsentRecordRow(Base):
    """Append-only ledger: rows are inserted, never updated; only erasure deletes them."""

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_records_subject", "subject_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(24))
    partner_id: Mapped[int] = mapped_column(Integer, default=0)
    granted: Mapped[bool] = mapped_column(Boolean)
    legal_basis: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsentStateRow(Base):
    """Current state per (subject, purpose, partner), kept in step with the ledger for fast checks."""

    __tablename__ = "consent_state"
    __table_args__ = (Index("ix_consent_state_purpose", "purpose", "partner_id", "granted"),)

    subject_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    purpose: Mapped[str] = mapped_column(String(24), primary_key=True)
    partner_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    granted: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


class SuppressionRow(Base):
    """Keyed hashes of identifiers whose subject was erased; the gate refuses them."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_pseudonym", "pseudonym"),)  # as identities' (ingestion's lookup)

    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    key_version: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    pseudonym: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    suppressed_at: Mapped[datetime] = mapped_column(UtcDateTime)
