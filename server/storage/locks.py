"""Serializing the writers that create subjects and link identifiers.

Two transactions that both see an identifier as new would each create a subject for it; the
identity row of one would be dropped by its unique constraint, leaving events on a subject no
identifier reaches. On PostgreSQL one transaction-scoped advisory lock makes them take turns; on
SQLite a unit of work already holds the write lock from BEGIN.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

IDENTITY_WRITERS_LOCK = 0x6175_6469_656E_6365  # "audience", one lock for all identity writers
PURGE_LOCK = 0x7075_7267_6520_7265  # "purge re": one retention purge at a time


def serialize_identity_writes(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IDENTITY_WRITERS_LOCK})


@contextmanager
def purge_turn(engine: Engine) -> Iterator[bool]:
    """Whether this process may purge now: on PostgreSQL, a session-level advisory lock held on a
    connection of its own for the whole run (many transactions), given up at the end or with the
    connection if the process dies; ``False`` when another process holds it. SQLite: always
    ``True`` (each process purges on its own; chunks take turns on the file's write lock)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        ours = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": PURGE_LOCK}))
        connection.commit()  # the lock outlives the transaction; no session idles inside one
        try:
            yield ours
        finally:
            if ours:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PURGE_LOCK})
                connection.commit()
