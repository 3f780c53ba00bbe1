"""Which database failures mean "the database is away" (answer 503, try later) rather than a bug.

A client that gets a 503 backs off and retries; a 500 says something is wrong with the
request or the server. A network partition, a refused connection, a timed-out wait, a full
disk or a lock held too long are the first kind. The test is on the driver's own error codes,
not on message text (which names tables and, for some drivers, values).
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLite primary result codes: busy, locked, out of memory, read-only, I/O error, full, cannot open.
_SQLITE_AWAY = frozenset({5, 6, 7, 8, 10, 13, 14})
# PostgreSQL SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk full,
# too many connections), 57 operator intervention (statement timeout, shutdown), 58 system error.
_POSTGRES_AWAY_CLASSES = frozenset({"08", "53", "57", "58"})
_POSTGRES_READ_ONLY = "25006"  # a standby after a failover


class WaitExpired(Exception):
    """A bounded wait for the database (or for this process's turn to write) ran out."""


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` (raised by SQLAlchemy or a driver) means the database cannot serve now."""
    if isinstance(error, PoolTimeout | WaitExpired):
        return True
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(original, sqlite3.Error):
        return (getattr(original, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_AWAY
    if isinstance(original, psycopg.Error):
        state = original.sqlstate
        if state is None:  # raised by the client side itself: no connection, lost connection, wait expired
            return isinstance(original, psycopg.OperationalError)
        return state[:2] in _POSTGRES_AWAY_CLASSES or state == _POSTGRES_READ_ONLY
    return False
