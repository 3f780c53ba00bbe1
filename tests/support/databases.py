"""Fresh, migrated databases per test: a copied SQLite file or a PostgreSQL database cloned
from a migrated template, so no test pays for running the migrations again."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from server.storage import migrate
from server.storage.engine import build_engine

POSTGRES_ADMIN_URL = os.environ.get(
    "AUDIENCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("AUDIENCE_REQUIRE_POSTGRES", "") in {"1", "true", "yes"}
BACKENDS = [b for b in os.environ.get("AUDIENCE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def skip_or_fail(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required in this run: {reason}")
    pytest.skip(reason)


class PostgresServer:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"audience_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []

    def reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError:
            return False
        return True

    def url(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def create(self, *, template: str | None = None) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_all(self) -> None:
        for name in reversed(self.created):
            self.drop(name)
        self.engine.dispose()


@contextmanager
def migrated_sqlite_template(directory: Path) -> Iterator[Path]:
    path = directory / "template.db"
    engine = build_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    yield path


def copy_sqlite(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
