"""Engines and session factories for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from privacy.private_files import create_private_file, make_private_directory
from server.storage.bounded_waits import DatabaseTimeouts, bound_postgres
from server.storage.failures import creating_storage

SQLITE_BUSY_TIMEOUT_S = 10.0
# Execution option: this transaction will write. On SQLite it then takes the write lock at BEGIN,
# because a transaction that reads first cannot become a writer once another writer has
# committed (SQLITE_BUSY_SNAPSHOT, which the busy timeout does not retry).
WRITE_INTENT = "audience_write_intent"
SQLITE_CACHE_KIB = 65_536
# Without a checkpointer thread, checkpoint the WAL every ~40 MiB rather than every 4 MiB: fewer,
# larger syncs on bulk loads.
SQLITE_CHECKPOINT_PAGES = 10_000


def build_engine(
    url: str,
    *,
    wal_autocheckpoint: int = SQLITE_CHECKPOINT_PAGES,
    timeouts: DatabaseTimeouts | None = None,
    **options: Any,
) -> Engine:
    """Built on demand, never at import time, so tests and the CLI choose their own database.

    ``wal_autocheckpoint`` (SQLite only) is raised by a runtime whose own thread checkpoints:
    there SQLite's checkpoint only bounds the WAL (see ``server.storage.checkpointer``).
    ``timeouts`` bound every wait (``server.storage.bounded_waits``); the runtime passes them, and
    only migrations and test set-up go without (a migration's statements may run long).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            # Created here rather than by SQLite, which would follow the umask (0644): the file and,
            # after it, its -wal and -shm are the owner's alone.
            with creating_storage():
                make_private_directory(Path(database).parent)
                create_private_file(Path(database))
        engine = create_engine(parsed, **options)
        busy_s = SQLITE_BUSY_TIMEOUT_S if timeouts is None else timeouts.sqlite_busy_s
        _configure_sqlite(engine, wal_autocheckpoint=wal_autocheckpoint, busy_timeout_ms=round(busy_s * 1000))
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    options.setdefault("pool_pre_ping", True)
    if timeouts is not None:
        options.setdefault("pool_timeout", timeouts.pool_s)
    engine = create_engine(parsed, **options)
    if timeouts is not None:
        bound_postgres(engine, timeouts)
    return engine


def _configure_sqlite(engine: Engine, *, wal_autocheckpoint: int, busy_timeout_ms: int) -> None:
    """WAL for concurrent readers, enforced foreign keys, zeroed deletes, and real transactions.

    pysqlite's own transaction handling defers BEGIN; we take it over so that SAVEPOINT and
    the audit head lock behave as on PostgreSQL.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows are overwritten with zeros, not left as free space in their pages: an erased
        # person's rows must not be readable from the file (docs/erasure.md; cost measured there).
        cursor.execute("PRAGMA secure_delete=ON")
        # 64 MiB page cache (the default is 2 MiB): index inserts with random keys need the room.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        # The checkpoint runs inside the commit that crosses this many pages; see SQLITE_CHECKPOINT_PAGES.
        cursor.execute(f"PRAGMA wal_autocheckpoint={wal_autocheckpoint}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_INTENT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
