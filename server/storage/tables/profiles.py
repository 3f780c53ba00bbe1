"""The profile state (``server.frames.profiles``) and the record of each batch build.

No foreign key to ``subjects`` on the state tables, as on ``events``: they are written in bulk on
every ingest batch, and every row is reached by subject through the registry
(``server.storage.subject_tables``), which is how merges, splits and erasure find them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import AutoBigInteger, Base, UtcDateTime


class ProfileDailyRow(Base):
    """Events and revenue per subject, day, type and channel: windowed features are sums of these."""

    __tablename__ = "profile_daily"
    __table_args__ = (PrimaryKeyConstraint("subject_id", "day", "type", "channel"),)

    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(48), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[float] = mapped_column(Float)


class ProfileSummaryRow(Base):
    """One row per subject with a profile: its first and last event and purchase."""

    __tablename__ = "profile_summary"

    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    first_purchase: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_purchase: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ProfileInterestRow(Base):
    """A decayed interest accumulator: ``score`` as of ``as_of``; reads decay it to their own time."""

    __tablename__ = "profile_interests"
    __table_args__ = (PrimaryKeyConstraint("subject_id", "topic"),)

    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    topic: Mapped[str] = mapped_column(String(128), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)


class ProfileBuildRow(Base):
    """One batch build: what it was asked, how far it got, how it ended. Never a subject id.

    ``status``: ``running``, ``succeeded``, ``failed``; a run whose process died is found
    ``running`` with a stale ``heartbeat_at`` and is marked ``failed`` by the next build.
    ``cut_points``: the value-tier quantiles it computed, applied to every profile read after it.
    """

    __tablename__ = "profile_builds"

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    partitions: Mapped[int] = mapped_column(Integer)
    partitions_done: Mapped[int] = mapped_column(Integer, default=0)
    events_read: Mapped[int] = mapped_column(BigInteger, default=0)
    subjects: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_written: Mapped[int] = mapped_column(BigInteger, default=0)
    cut_points: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(48))
    error_message: Mapped[str | None] = mapped_column(String(512))
