"""Bulk inserts and upserts from a Polars frame, past the ORM's per-value processing.

PostgreSQL gets ``COPY`` (straight into the table, or into a temporary table followed by one
``INSERT ... SELECT ... ON CONFLICT``), so a racing duplicate never fails the batch. SQLite gets
``INSERT ... VALUES`` statements of ``SQLITE_ROWS_PER_STATEMENT`` rows each (within the driver's
limit on parameters) on the driver. Values are formatted by Polars as SQLAlchemy stores them
(timestamps as naive UTC), so rows written here read back exactly like rows written by the ORM.
"""

from __future__ import annotations

import io
import secrets
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any, cast

import polars as pl
import psycopg
from sqlalchemy.orm import Session

from server.storage.base import Base
from server.storage.upsert import table_of

SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S%.6f"
POSTGRES_TIMESTAMP = "%Y-%m-%d %H:%M:%S%.6f"
PIPELINED_UPSERT_ROWS = 2_000
SQLITE_ROWS_PER_STATEMENT = 500
"""Rows per SQLite ``INSERT ... VALUES``: one statement step per row cost ~12 % of a 1M-event insert."""


def bulk_insert(session: Session, model: type[Base], frame: pl.DataFrame, *, ignore_conflicts: bool = True) -> None:
    """Insert every row of ``frame`` (columns named as the table's) in the caller's transaction."""
    _write(session, model, frame, ignore_conflicts=ignore_conflicts)


def bulk_upsert(session: Session, model: type[Base], frame: pl.DataFrame, *, keys: Sequence[str], newer: str) -> None:
    """Insert rows, or update the stored row of the same ``keys`` where ``newer`` is not older.

    The comparison runs in the database, so there is no read-then-write window, and a stale row
    (an older statement arriving late) never overwrites a newer one.
    """
    table = table_of(model)
    updated = [column for column in frame.columns if column in table.c and column not in keys]
    conflict = (
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{column} = excluded.{column}" for column in updated)
        + f" WHERE excluded.{newer} >= {table.name}.{newer}"
    )
    _write(session, model, frame, ignore_conflicts=False, on_conflict=conflict)


def bulk_accumulate(
    session: Session,
    model: type[Base],
    frame: pl.DataFrame,
    *,
    keys: Sequence[str],
    add: Sequence[str] = (),
    least: Sequence[str] = (),
    greatest: Sequence[str] = (),
) -> None:
    """Insert rows, or fold them into the stored row of the same ``keys`` in the database: ``add``
    columns are summed, ``least`` and ``greatest`` keep the smaller and larger (a null loses to a
    value). Additive state needs no read first, so a batch folds in with one statement per table."""
    table = table_of(model).name
    postgres = session.get_bind().dialect.name == "postgresql"

    def extreme(function: str, column: str) -> str:
        mine, theirs = f"{table}.{column}", f"excluded.{column}"
        if postgres:  # LEAST and GREATEST skip nulls
            return f"{column} = {function.upper()}({mine}, {theirs})"
        return f"{column} = coalesce({function}({mine}, {theirs}), {mine}, {theirs})"  # SQLite's are null-strict

    assignments = [f"{column} = {table}.{column} + excluded.{column}" for column in add]
    assignments += [extreme("least" if postgres else "min", column) for column in least]
    assignments += [extreme("greatest" if postgres else "max", column) for column in greatest]
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + ", ".join(assignments)
    _write(session, model, frame, ignore_conflicts=False, on_conflict=conflict)


def _write(
    session: Session, model: type[Base], frame: pl.DataFrame, *, ignore_conflicts: bool, on_conflict: str = ""
) -> None:
    """The table's columns of ``frame``, on the session's own driver connection, in its transaction."""
    if frame.height == 0:
        return
    table = table_of(model)
    frame = frame.select([column for column in frame.columns if column in table.c])
    connection = session.connection()
    driver = connection.connection.dbapi_connection
    if driver is None:
        raise RuntimeError("no driver connection")
    if connection.dialect.name == "postgresql":
        _copy_postgres(driver, table.name, frame, ignore_conflicts=ignore_conflicts, on_conflict=on_conflict)
    else:
        _executemany_sqlite(
            cast(sqlite3.Connection, driver),
            table.name,
            frame,
            ignore_conflicts=ignore_conflicts,
            on_conflict=on_conflict,
        )


def _executemany_sqlite(
    driver: sqlite3.Connection, table: str, frame: pl.DataFrame, *, ignore_conflicts: bool, on_conflict: str = ""
) -> None:
    formatted = frame.with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.strftime(SQLITE_TIMESTAMP)
    )
    names = ", ".join(frame.columns)
    verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
    width = frame.width
    per_statement = max(
        1, min(SQLITE_ROWS_PER_STATEMENT, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    )

    def statement(rows: int) -> str:
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
        return f"{verb} INTO {table} ({names}) VALUES {values} {on_conflict}"

    flat = list(chain.from_iterable(formatted.iter_rows()))
    whole = frame.height // per_statement * per_statement
    step = per_statement * width
    cursor = driver.cursor()
    try:
        if whole:
            cursor.executemany(statement(per_statement), (flat[i : i + step] for i in range(0, whole * width, step)))
        if whole < frame.height:
            cursor.execute(statement(frame.height - whole), flat[whole * width :])
    finally:
        cursor.close()


def _copy_postgres(
    driver: object, table: str, frame: pl.DataFrame, *, ignore_conflicts: bool, on_conflict: str = ""
) -> None:
    """``on_conflict``: always go through the staging table and resolve conflicts with this clause."""
    formatted = frame.with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.strftime(POSTGRES_TIMESTAMP),
        pl.col(pl.Binary).bin.encode("hex").map_batches(lambda s: "\\x" + s, return_dtype=pl.String),
        pl.col(pl.Boolean).cast(pl.String),
    )
    names = ", ".join(frame.columns)
    with driver.cursor() as cursor:  # type: ignore[attr-defined]
        if on_conflict and frame.height <= PIPELINED_UPSERT_ROWS:
            # Few rows: one pipelined executemany beats creating and dropping a staging table.
            marks = ", ".join(["%s"] * len(frame.columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {on_conflict}", formatted.rows())
            return
        buffer = io.BytesIO()
        formatted.write_csv(buffer, include_header=False, null_value="\\N", quote_style="necessary")
        data = buffer.getvalue()
        options = "WITH (FORMAT csv, NULL '\\N')"
        if on_conflict:
            _through_staging(cursor, table, names, options, data, on_conflict)
            return
        if not ignore_conflicts:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN {options}") as copy:
                copy.write(data)
            return
        # Straight into the table; only a conflict (a racing duplicate) pays for the staging route.
        cursor.execute("SAVEPOINT bulk_copy")
        try:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN {options}") as copy:
                copy.write(data)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
            _through_staging(cursor, table, names, options, data, "ON CONFLICT DO NOTHING")
        else:
            cursor.execute("RELEASE SAVEPOINT bulk_copy")


def _through_staging(
    cursor: psycopg.Cursor[object], table: str, names: str, options: str, data: bytes, clause: str
) -> None:
    staging = f"_bulk_{table}_{secrets.token_hex(4)}"
    cursor.execute(f"CREATE TEMP TABLE {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    with cursor.copy(f"COPY {staging} ({names}) FROM STDIN {options}") as copy:
        copy.write(data)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {clause}")
    cursor.execute(f"DROP TABLE {staging}")


def bulk_delete(session: Session, model: type[Base], keys: pl.DataFrame) -> None:
    """Delete the rows whose key columns (``keys``' columns) match a row of ``keys``, in bulk.

    PostgreSQL: the keys are copied into a temporary table and deleted with one join; SQLite: one
    prepared ``DELETE`` run for each key on the driver, each a primary-key probe.
    """
    if keys.height == 0:
        return
    table = table_of(model).name
    connection = session.connection()
    driver: Any = connection.connection.dbapi_connection
    match = " AND ".join(f"{table}.{column} = k.{column}" for column in keys.columns)
    if connection.dialect.name == "postgresql":
        formatted = keys.with_columns(
            pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.strftime(POSTGRES_TIMESTAMP)
        )
        buffer = io.BytesIO()
        formatted.write_csv(buffer, include_header=False, null_value="\\N", quote_style="necessary")
        staging = f"_delete_{table}_{secrets.token_hex(4)}"
        names = ", ".join(keys.columns)
        with driver.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE {staging} AS SELECT {names} FROM {table} WITH NO DATA")
            with cursor.copy(f"COPY {staging} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
                copy.write(buffer.getvalue())
            cursor.execute(f"DELETE FROM {table} USING {staging} k WHERE {match}")
            cursor.execute(f"DROP TABLE {staging}")
        return
    formatted = keys.with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.strftime(SQLITE_TIMESTAMP)
    )
    condition = " AND ".join(f"{column} = ?" for column in keys.columns)
    cursor = driver.cursor()
    try:
        cursor.executemany(f"DELETE FROM {table} WHERE {condition}", formatted.iter_rows())
    finally:
        cursor.close()
