"""Alembic environment: runs on the connection the caller hands over (see server/storage/migrate.py)."""

from __future__ import annotations

from alembic import context

from server.storage import tables  # noqa: F401  (registers every table on Base.metadata)
from server.storage.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `audience migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
