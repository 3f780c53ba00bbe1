"""Pseudonymous subjects, their keyed identifiers and their events.

A subject id is random, assigned on first sight, and never derived from an identifier, so it
reveals nothing about the person. Identifiers are stored only as keyed HMACs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SubjectRow(Base):
    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into: Mapped[int | None] = mapped_column(BigInteger)


class IdentityRow(Base):
    __tablename__ = "identities"
    # Ingestion looks identifiers up by pseudonym alone, all kinds in one query, and matches the
    # kind and key version in the batch: one round trip per batch instead of one per kind.
    __table_args__ = (
        UniqueConstraint("kind", "key_version", "pseudonym"),
        Index("ix_identities_pseudonym", "pseudonym"),
    )

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    origin_subject_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    key_version: Mapped[int] = mapped_column(SmallInteger)
    pseudonym: Mapped[bytes] = mapped_column(LargeBinary(32))
    partner_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("partners.id"))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)


class EventRow(Base):
    """The unique (source, event_id) pair makes a replayed batch a no-op in the database itself.

    ``subject_id`` has no foreign key on purpose: checking one per row cost PostgreSQL a third of
    its bulk-load speed on the largest table. Events are only written by ingestion, which creates
    the subject in the same transaction, and re-pointed by merges; erasure deletes them by subject.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index("ix_events_subject_time", "subject_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    origin_subject_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(48))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    topics: Mapped[str | None] = mapped_column(Text, doc="Known topic ids joined by ';' (ids are slugs).")
    amount: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    campaign: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(16))
