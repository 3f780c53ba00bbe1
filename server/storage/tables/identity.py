"""The identity merge journal and coarse declared traits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class IdentityMergeRow(Base):
    """One merge of a subject into another; what it moved is found through ``origin_subject_id``."""

    __tablename__ = "identity_merges"

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    # Null once either side is erased: the row stays as a receipt that a merge happened.
    winner_subject_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    loser_subject_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(String(32))
    identities_moved: Mapped[int] = mapped_column(Integer)
    events_moved: Mapped[int] = mapped_column(Integer)
    merged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    split_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DerivedRebuildRow(Base):
    """A subject whose derived data (features, interest scores, segment memberships) is stale.

    Merges and splits mark both sides; the builders of derived data take marks in ``marked_at``
    order and clear them. One row per subject, however often it was marked.
    """

    __tablename__ = "derived_rebuilds"

    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(String(32))
    marked_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SubjectTraitsRow(Base):
    """Quasi-identifiers kept only as coarse bands: an age band, never a birth date."""

    __tablename__ = "subject_traits"

    subject_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    age_band: Mapped[str | None] = mapped_column(String(8))
    gender: Mapped[str | None] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
