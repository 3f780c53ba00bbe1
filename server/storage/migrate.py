"""Programmatic Alembic: the CLI, the app's readiness probe and the tests share these calls.

Some revisions rewrite stored values under the keyring (0007 hashes the message ids of stored
events); callers that hold it pass ``message_keys``, and such a revision raises ``KeyringNeeded``
without it, before changing anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

import migrations
from privacy.message_keys import MessageKeys

MIGRATIONS_DIR = Path(migrations.__file__).parent
MESSAGE_KEYS_ATTRIBUTE: Final = "message_keys"


class KeyringNeeded(Exception):
    """A revision must rewrite stored values under the keyring, and it was not given."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"this upgrade rewrites the {what} under the keyring: make the keyring available "
            "(AUDIENCE_KEYRING, or the keyring file) and run `audience migrate` again"
        )


def alembic_config(connection: Connection | None = None, *, message_keys: MessageKeys | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes[MESSAGE_KEYS_ATTRIBUTE] = None if message_keys is None else message_keys.digest_many
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations folder has no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, message_keys: MessageKeys | None = None) -> None:
    """On SQLite the write-ahead log is emptied after: the pages a revision rewrote must not stay in it."""
    with _migrating(engine) as connection:
        command.upgrade(alembic_config(connection, message_keys=message_keys), revision)
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def downgrade(engine: Engine, revision: str) -> None:
    with _migrating(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction; on SQLite with foreign keys off, as SQLite's own procedure for rebuilding a
    table asks: dropping the old copy of a parent table (``subjects``) with them on deletes every
    child row through ON DELETE CASCADE. The keys are checked before the commit instead, and the
    connection is not handed back to the pool with them off."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    connection = engine.connect()
    try:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        with connection.begin():
            yield connection
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise RuntimeError(f"the migration left {len(violations)} rows whose foreign key points nowhere")
    finally:
        connection.invalidate()
        connection.close()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def probe_write(session: Session) -> None:
    """A committed write that changes nothing, for readiness: a full disk, a read-only standby or a
    lost connection fail it, while a rolled-back write can succeed in memory without touching disk."""
    session.execute(text("UPDATE alembic_version SET version_num = version_num"))
