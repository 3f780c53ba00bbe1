"""Segments, their memberships, their grants to partners, what each partner was told, and the
operations partner apps registered.

Two logs, two readers. ``segment_memberships`` keeps each stay of a subject in a segment (entered,
exited): the marketer's view, purpose-free. A partner sees a segment only through a grant, and
only the members who consent to the grant's purpose and to sharing with that partner:
``grant_audience`` is that set as the partner was last told it, and ``grant_changes`` the
append-only log of what it was told, numbered by ``seq``. Writers of ``grant_changes`` take turns
(``server.storage.locks``), so ``seq`` commits in order and a partner resuming after ``seq``
never misses an entry.

No foreign key to ``subjects`` on the membership and audience tables, as on the profile state:
they are written in bulk by every evaluation and reached by subject through the registry
(``server.storage.subject_tables``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SegmentRow(Base):
    """A rule-based segment and how its evaluation stands.

    ``status``: ``pending`` (never evaluated), ``ready``, ``failed`` (the last evaluation failed:
    the last good members stay, ``stale``). ``evaluation_started_at`` is set while an evaluation
    runs; one that has run far longer than it should is shown as stuck.
    """

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(512))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule_text: Mapped[str] = mapped_column(Text)
    depends_on: Mapped[list[int]] = mapped_column(JSON)
    time_dependent: Mapped[bool] = mapped_column(Boolean)
    template: Mapped[str | None] = mapped_column(String(48))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    member_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    evaluation_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_error_code: Mapped[str | None] = mapped_column(String(48))
    last_error_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SegmentMembershipRow(Base):
    """One stay of a subject in a segment; ``exited_at`` null while it lasts."""

    __tablename__ = "segment_memberships"
    __table_args__ = (
        Index(
            "ux_segment_memberships_current",
            "segment_id",
            "subject_id",
            unique=True,
            sqlite_where=text("exited_at IS NULL"),
            postgresql_where=text("exited_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(BigInteger, index=True)
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SegmentGrantRow(Base):
    """A segment granted to a partner for one purpose; ``revoked_at`` ends every read at once."""

    __tablename__ = "segment_grants"
    __table_args__ = (
        Index(
            "ux_segment_grants_active",
            "segment_id",
            "partner_id",
            "purpose",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"), index=True)
    partner_id: Mapped[int] = mapped_column(Integer, ForeignKey("partners.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(24))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    granted_by: Mapped[str | None] = mapped_column(String(32))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(32))


class GrantAudienceRow(Base):
    """A subject the grant's partner was last told is in the segment (an ``enter`` at ``entered_seq``)."""

    __tablename__ = "grant_audience"

    grant_id: Mapped[int] = mapped_column(
        ForeignKey("segment_grants.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, index=True)
    entered_seq: Mapped[int] = mapped_column(BigInteger)


class GrantChangeRow(Base):
    """What a partner was told: ``enter`` or ``exit`` of one subject, as that partner's pseudonym.

    The pseudonym is kept with the entry so that an exit written when the subject is erased still
    reaches the partner (Art. 17(2), 19): erasure clears ``subject_id`` and keeps the exit.
    """

    __tablename__ = "grant_changes"
    __table_args__ = (Index("ix_grant_changes_grant_seq", "grant_id", "seq"),)

    seq: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("segment_grants.id", ondelete="CASCADE"))
    subject_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    pseudonym: Mapped[str] = mapped_column(String(48))
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class TrustedDocumentRow(Base):
    """A GraphQL operation a partner registered, by the sha256 of its text; run without parsing again."""

    __tablename__ = "trusted_documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    partner_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("partners.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_by: Mapped[str | None] = mapped_column(String(32))
