"""What analysts' aggregates keep: a theta sketch per segment, and the releases each key was given.

``segment_sketches`` holds, per segment, an Apache DataSketches compact theta sketch of its
*countable* members (open stays of people who consent to profiling and are not restricted). A
sketch retains hashes of subject ids, so it is derived data about people: every change that can
alter a segment's countable members (an enter or exit, a consent or restriction change, a merge,
a split, an erasure) deletes the segment's sketch in the same transaction, and the next reader
rebuilds it. A sketch row therefore never counts anyone who has left, and never outlives an
erasure's transaction with the erased person's hash in it.

``analytics_releases`` is the ledger of what each key was told: one row per distinct release
(a question over the data as it stood), per key and budget period. It is what the query budget and
the differential-privacy budget count, and, with differential privacy on, the noisy answer itself,
so that asking again is answered from here at no cost instead of drawing fresh noise to average.

``bi_aggregates`` holds the aggregates published for BI tools (``server.analytics.publish``): each
value as ``release`` gave it (k floor, secondary suppression, noise), so a row is what an analyst
could be shown, never a true count. It holds no subject id and no member list, only labels
(a segment's name), cells (a breakdown's value) and released values; the SQL views a BI role reads
(``server.storage.bi_access``) and the Parquet export are drawn from it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class SegmentSketchRow(Base):
    __tablename__ = "segment_sketches"

    segment_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    lg_k: Mapped[int] = mapped_column(Integer)
    members: Mapped[int] = mapped_column(BigInteger)
    """The exact count the sketch was built from (a sketch of fewer than 2^lg_k is exact too)."""
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    built_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AnalyticsReleaseRow(Base):
    __tablename__ = "analytics_releases"
    __table_args__ = (Index("ux_analytics_releases_key_period_release", "key_id", "period", "release", unique=True),)

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    period: Mapped[date] = mapped_column(Date)
    release: Mapped[str] = mapped_column(String(64))
    """SHA-256 (hex) of the question and of the true answer it was given over: not reversible."""
    question: Mapped[str] = mapped_column(String(64))
    """SHA-256 (hex) of the question alone."""
    kind: Mapped[str] = mapped_column(String(32))
    epsilon: Mapped[float | None] = mapped_column(Float)
    """What the release spent from the key's differential-privacy budget; null with it off."""
    answer: Mapped[list[Any] | None] = mapped_column(JSON)
    """With differential privacy on: the noisy values given, returned again for the same release."""
    released_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BiAggregateRow(Base):
    __tablename__ = "bi_aggregates"
    __table_args__ = (Index("ix_bi_aggregates_aggregate_label", "aggregate", "subject_label"),)

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    aggregate: Mapped[str] = mapped_column(String(32))
    """What is counted: ``segment_size``, ``segment_breakdown``..."""
    subject_label: Mapped[str] = mapped_column(String(256))
    """What the aggregate is about (a segment's name): the subject of the figure, never a person."""
    dimension: Mapped[str | None] = mapped_column(String(64))
    """What a breakdown is by (``lifecycle``, ``region``...); null for a single count."""
    cell: Mapped[str | None] = mapped_column(String(256))
    """The breakdown's value this row counts; null for a total."""
    value: Mapped[int | None] = mapped_column(BigInteger)
    """The released value; null exactly when ``suppressed`` says why."""
    suppressed: Mapped[str | None] = mapped_column(String(32))
    low: Mapped[int | None] = mapped_column(BigInteger)
    """For an estimate: its error bar (null for exact and noisy counts)."""
    high: Mapped[int | None] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))
    noise_scale: Mapped[float | None] = mapped_column(Float)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    """When the counts were taken; they were published in the same transaction."""
