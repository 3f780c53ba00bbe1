"""The migrations and the models describe the same database, on both dialects."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from server.runtime import Runtime
from server.storage import migrate
from server.storage.base import Base
from server.storage.tables import AuditHeadRow


def schema_differences(runtime: Runtime) -> list[object]:
    with runtime.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_autogenerate_finds_no_difference_between_models_and_migrations(runtime: Runtime) -> None:
    assert migrate.is_at_head(runtime.engine)
    assert schema_differences(runtime) == []


def test_upgrade_downgrade_upgrade_round_trips(runtime: Runtime) -> None:
    migrate.downgrade(runtime.engine, "base")
    tables = set(inspect(runtime.engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(runtime.engine)
    assert migrate.is_at_head(runtime.engine)
    assert schema_differences(runtime) == []
    with runtime.sessions() as session:
        head = session.get(AuditHeadRow, 1)
        assert head is not None
        assert (head.seq, head.entry_hash) == (0, bytes(32))


@pytest.mark.parametrize("revision", ["0001", "0002", "0003", "0004", "0005"])
def test_each_revision_downgrades_cleanly(runtime: Runtime, revision: str) -> None:
    migrate.downgrade(runtime.engine, "base")
    migrate.upgrade(runtime.engine, revision)
    migrate.upgrade(runtime.engine)
    assert migrate.is_at_head(runtime.engine)
