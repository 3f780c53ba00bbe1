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
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SubjectRow(Base):
    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Among subjects created at one moment (one ingestion pass), the position in it of the record
    # that created each: which of them is senior then follows the data, never the keyring.
    created_rank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into: Mapped[int | None] = mapped_column(BigInteger)


class IdentityRow(Base):
    __tablename__ = "identities"
    """A keyed identifier linked to a subject, in a scope: ours (``partner_id`` null) or one partner's.

    A partner's links are its own (docs/ingestion.md): our records never follow them, so the same
    identifier may be linked once per scope, and the unique key includes the scope.
    """

    # Ingestion looks identifiers up by pseudonym alone, all kinds in one query, and matches the
    # kind, key version and scope in the batch: one round trip per batch instead of one per kind.
    __table_args__ = (
        Index("ux_identities_scoped", "kind", "key_version", "pseudonym", text("coalesce(partner_id, 0)"), unique=True),
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
    """Keyed by (source, message_key), the keyed hash of the sender's idempotency key
    (``privacy.message_keys``): a replayed batch is a no-op in the database itself, and a
    messageId holding an email is not kept in clear.

    No surrogate id, no time in the subject index and no foreign key on ``subject_id``, on purpose:
    each is per-row work on the largest table's bulk load, and no reader used the first two
    (dropping them cut the events insert of a 1,000,000-event import by a quarter on PostgreSQL
    and a tenth on SQLite; the key check had cost ``COPY`` a third). Events are only written by
    ingestion, which creates the subject in the same transaction, and re-pointed by merges and
    splits, which find them by ``subject_id``; erasure deletes them by subject.
    """

    __tablename__ = "events"
    # The key leads with the hash: a batch's lookup probes it directly. Led by the source, PostgreSQL
    # read every event of the source and filtered them (55 ms per batch of 1,000 against 90,000).
    __table_args__ = (PrimaryKeyConstraint("message_key", "source"), Index("ix_events_subject", "subject_id"))

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
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


class MessageReceiptRow(Base):
    """Records judged and not stored (refused for consent, suppressed), by (source, message_key).

    With the events table this holds every record ever judged, so a record sent again is a
    duplicate whatever became of it the first time: never judged twice (a replay changes no
    consent), and answered the same whether the person is known, consenting or erased (a resend
    reveals nothing). No subject id and no time: nothing here says whose record it was. Whatever
    deletes events (erasure) must leave their keys here, or a resend would be judged anew.
    """

    __tablename__ = "message_receipts"
    __table_args__ = (PrimaryKeyConstraint("message_key", "source"),)

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
