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
CHANGE_LOG_LOCK = 0x6772_616E_7420_6C6F  # "grant lo": writers of grant_changes take turns


def serialize_identity_writes(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IDENTITY_WRITERS_LOCK})


def serialize_change_log_writes(session: Session) -> None:
    """Held to the end of the transaction: ``grant_changes.seq`` values then commit in the order
    they were drawn, so a partner that read up to ``seq`` never finds a smaller one appear later."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})


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


SEGMENT_EVALUATION_LOCK = 0x7365_676D_656E_7473  # "segments": writers of segment stays take turns


def serialize_segment_evaluation(session: Session) -> None:
    """Held to the end of the transaction: two evaluations of the same subjects (a batch partition
    and a real-time drain, in two processes) would both open a stay for a subject that entered."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEGMENT_EVALUATION_LOCK})


def try_segment_evaluation_turn(session: Session) -> bool:
    """``serialize_segment_evaluation`` without waiting: ``False`` when another transaction holds
    it (a drain that finds it so leaves the marks to the holder or the next round). SQLite: the
    unit of work already holds the one write lock, so always ``True``."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEGMENT_EVALUATION_LOCK}))


SKETCH_LOCK = 0x736B_6574_6368_6573  # "sketches": stored segment sketches against what changes them


def hold_off_sketch_builds(session: Session) -> None:
    """Taken (shared, to the end of the transaction) by every change that deletes stored segment
    sketches, before it deletes them. A builder stores a sketch only under the exclusive form
    (``try_sketch_build_turn``), so it never stores one read before such a change committed and
    after its delete ran: on PostgreSQL (READ COMMITTED) a builder holding the exclusive lock reads
    every earlier change committed, and a change that comes later waits, then deletes what it
    stored. Changes never wait for each other. SQLite: one writer at a time already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": SKETCH_LOCK})


def try_sketch_build_turn(session: Session) -> bool:
    """Whether this transaction may store a sketch it builds now: ``False`` while a change that
    deletes sketches is in flight (the builder then answers from its fresh sketch without storing
    it, and waits for no one). Held to the end of the transaction. SQLite: always ``True`` (the
    unit of work holds the one write lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SKETCH_LOCK}))
