"""After an erasure commits: the database files no longer hold what it deleted.

SQLite: every connection runs with ``secure_delete`` on (``server.storage.engine``), so deleted
rows are overwritten with zeros in the pages that held them, not left as free space. But in WAL
mode the pages as they were before the erasure stay in the ``-wal`` file until a checkpoint copies
the log back and SQLite starts it again; ``scrub_database_files`` runs that checkpoint in
TRUNCATE mode, which waits for readers (up to the busy timeout) and then cuts the log to zero
bytes. Run it after the erasure's transaction commits, never inside it.

PostgreSQL: a deleted row is a dead tuple until VACUUM (autovacuum, or by hand) frees its space,
and the WAL segments and any base backup keep it until they are recycled or expire. ``pg_dump``
and every query show live rows only. Nothing to do here; docs/erasure.md has the operator's side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from server.storage.engine import is_sqlite

__all__ = ["FilesScrubbed", "scrub_database_files"]

logger = logging.getLogger("audience.erasure")


@dataclass(frozen=True, slots=True)
class FilesScrubbed:
    applies: bool
    """False on PostgreSQL: there VACUUM is the physical step (docs/erasure.md)."""
    complete: bool
    """True when the WAL was copied back and truncated; False if a reader kept it busy (run again)."""


def scrub_database_files(engine: Engine) -> FilesScrubbed:
    if not is_sqlite(engine):
        return FilesScrubbed(applies=False, complete=True)
    connection = engine.raw_connection()  # autocommit (the connect hook): no transaction around the checkpoint
    try:
        cursor = connection.cursor()
        busy, _log, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        connection.close()
    if busy:
        logger.warning("WAL not truncated after an erasure: a reader held it; run again", extra={"where": "erasure"})
    return FilesScrubbed(applies=True, complete=not busy)
