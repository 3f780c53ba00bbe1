"""Serializing the writers that create subjects and link identifiers.

Two transactions that both see an identifier as new would each create a subject for it; the
identity row of one would be dropped by its unique constraint, leaving events on a subject no
identifier reaches. On PostgreSQL one transaction-scoped advisory lock makes them take turns; on
SQLite a unit of work already holds the write lock from BEGIN.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

IDENTITY_WRITERS_LOCK = 0x6175_6469_656E_6365  # "audience", one lock for all identity writers


def serialize_identity_writes(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IDENTITY_WRITERS_LOCK})
