"""Dialect-aware bulk INSERT ... ON CONFLICT, one statement for many rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.storage.base import Base


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError("model is not mapped to a table")
    return table


def dialect_insert(session: Session, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table_of(model))


def insert_ignoring_conflicts(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(dialect_insert(session, model).on_conflict_do_nothing(), list(rows))


def upsert(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
    keep_where_null: Sequence[str] = (),
) -> None:
    """Insert or update; columns in ``keep_where_null`` keep their stored value when the new one is null."""
    if not rows:
        return
    statement = dialect_insert(session, model)
    table = table_of(model)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            column: func.coalesce(statement.excluded[column], table.c[column])
            if column in keep_where_null
            else statement.excluded[column]
            for column in update
        },
    )
    session.execute(statement, list(rows))


def insert_selected_ignoring_conflicts(session: Session, model: type[Base], columns: Sequence[str], query: Any) -> int:
    """``INSERT INTO model (columns) SELECT ...`` in the database, rows already there skipped; rows added.

    ``query`` must have a ``WHERE`` (SQLite reads an ``ON`` after a bare ``SELECT ... FROM`` as a join's).
    """
    statement = dialect_insert(session, model).from_select(list(columns), query).on_conflict_do_nothing()
    result = session.execute(statement.execution_options(preserve_rowcount=True))  # an INSERT's count is opt-in
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
