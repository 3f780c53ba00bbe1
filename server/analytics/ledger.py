"""The ledger of releases: what each key was given per period, what that cost, what is left.

One row per (key, period, release). A release is a question over the true values it was asked
over, so a repeat finds its row and costs nothing; with differential privacy on, the row keeps the
noisy values given, and a repeat gets those same values back rather than a fresh draw. Checking
the budget and recording a release happen under one lock per key (PostgreSQL: a transaction-scoped
advisory lock; SQLite: the unit of work's write lock), so two concurrent requests cannot both
spend the last of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.storage.tables import AnalyticsReleaseRow
from server.storage.upsert import insert_ignoring_conflicts

__all__ = ["Spent", "period_of", "previous_answer", "record_release", "serialize_key", "spent"]

EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Spent:
    releases: int
    epsilon: float


def period_of(moment: datetime, days: int) -> date:
    """The first day of the budget period holding ``moment``: periods of ``days`` UTC days from 1970-01-01."""
    elapsed = (moment.date() - EPOCH).days
    return EPOCH + timedelta(days=elapsed - elapsed % days)


def serialize_key(session: Session, key_id: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        lock = int.from_bytes(hashlib.sha256(f"analytics:{key_id}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})


def spent(session: Session, key_id: str, period: date) -> Spent:
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(AnalyticsReleaseRow.epsilon), 0.0)).where(
            AnalyticsReleaseRow.key_id == key_id, AnalyticsReleaseRow.period == period
        )
    ).one()
    return Spent(int(row[0]), float(row[1] or 0.0))


def previous_answer(session: Session, key_id: str, period: date, release: str) -> list[Any] | None:
    """The release's row as given before in this period: its stored answer (``[]`` without one), or None."""
    row = session.execute(
        select(AnalyticsReleaseRow.answer).where(
            AnalyticsReleaseRow.key_id == key_id,
            AnalyticsReleaseRow.period == period,
            AnalyticsReleaseRow.release == release,
        )
    ).first()
    if row is None:
        return None
    return list(row.answer or [])


def record_release(
    session: Session,
    *,
    key_id: str,
    period: date,
    release: str,
    question: str,
    kind: str,
    epsilon: float | None,
    answer: list[Any] | None,
    now: datetime,
) -> None:
    insert_ignoring_conflicts(
        session,
        AnalyticsReleaseRow,
        [
            {
                "key_id": key_id,
                "period": period,
                "release": release,
                "question": question,
                "kind": kind,
                "epsilon": epsilon,
                "answer": answer,
                "released_at": now,
            }
        ],
    )
