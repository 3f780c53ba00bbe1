"""Data quality: what ingestion did per source and day, and the report each build stores.

Neither table holds a subject id, a record or a raw label: analysts read them (``dataQuality``),
and a source is kept in its stored form (declared as written, else its keyed hash,
``privacy.labels``), exactly as on ``events``. Counts only, so no table here is subject-keyed
and none is in the registry of subject-keyed tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, UtcDateTime


class IngestTallyRow(Base):
    """Records of one source on one day by outcome (``server.frames.tallies.Outcome``, or
    ``rejected:<code>``); each ingestion pass adds to it in its own transaction.

    Additive, so concurrent passes fold in with one ``INSERT ... ON CONFLICT`` each, and a
    pass rolled back leaves no count behind. ``day``: days since 1970-01-01 (UTC) of the pass.
    """

    __tablename__ = "ingest_tallies"
    __table_args__ = (PrimaryKeyConstraint("source", "day", "outcome"),)

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    outcome: Mapped[str] = mapped_column(String(48), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class DataQualityReportRow(Base):
    """One source's data quality as of one build (``server.profiles.quality``).

    The figures an analyst filters or sorts on are columns; the ones with a shape of their own
    (null rate per field, counts per outcome, the daily volumes with their trailing statistics)
    are in ``metrics``, JSON, read back whole. A build's reports are written once, at its end.
    """

    __tablename__ = "data_quality_reports"
    __table_args__ = (PrimaryKeyConstraint("build_id", "source"),)

    build_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("profile_builds.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime)
    rows: Mapped[int] = mapped_column(BigInteger)
    last_occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    anomalous_days: Mapped[int] = mapped_column(Integer)
    bot_like_subjects: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
