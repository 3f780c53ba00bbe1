"""Bulk reads straight into Polars frames: Arrow over ADBC, no ORM row and no Python object per value.

A batch build reads millions of events; through the ORM (or a DB-API cursor) each value becomes
a Python object first. ADBC hands the driver's result over as Arrow columns, which Polars takes
without copying. Each reader has a connection of its own beside the engine's pool, in
autocommit, so each query sees what was committed when it started (one longer transaction would
pin a snapshot for the whole build and miss what was committed between partitions).

PostgreSQL is read in this process (``AdbcReader``). SQLite is read by a child process
(``SqliteArrowReader``): ADBC's SQLite driver carries its own copy of SQLite, and two copies of
SQLite in one process break each other's locks on the same file (POSIX advisory locks belong to
the process, so one copy's unlock or close() releases the other's; measured here: the engine's
next commit failed with "locking protocol"; https://www.sqlite.org/howtocorrupt.html, section
2.2.2, lists it as a way to corrupt a database). In a process of its own it is one more ordinary
SQLite reader. The child sends the result back as an Arrow IPC stream.

Where ADBC cannot reach the database (a SQLite ``:memory:`` database, which exists only inside
the engine's own connection, or a ``file:`` URI form), ``SessionReader`` reads the same queries
through the caller's SQLAlchemy connection and builds the frame from its rows: the same answer,
without Arrow's speed.

All give frames of the caller's schema, timestamps as ``Datetime('us', 'UTC')``: SQLite keeps
them as text (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC, as SQLAlchemy and ``bulk`` write them)
and PostgreSQL as ``timestamp without time zone`` holding UTC.

Queries are the callers' constants (table and column names never come from input); values go as
``?`` parameters.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote, urlencode

import polars as pl
import pyarrow as pa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from server.storage.checkpointer import sqlite_file

__all__ = [
    "AdbcReader",
    "AdbcTarget",
    "FrameReader",
    "Reader",
    "SessionReader",
    "SqliteArrowReader",
    "adbc_reader",
    "adbc_target",
    "to_schema",
]

SQLITE_TIMESTAMP: Final = "%Y-%m-%d %H:%M:%S%.f"
SQLITE_BATCH_ROWS: Final = 1_000_000_000
"""Rows per Arrow batch from SQLite, so every result is a single batch. The driver types a column
from the values of the first batch it reads (SQLite columns have no fixed type): a column null in
every row of the first batch is typed as integers, and a later batch holding text or floats
there fails the read. One batch is typed from all its values. Nothing is allocated up front."""
_PLACEHOLDER: Final = re.compile(r"\?")


class FrameReader(Protocol):
    """Runs a query and returns its result as a frame of ``schema`` (columns in that order)."""

    def frame(self, query: str, schema: pl.Schema, params: Sequence[Any] = ()) -> pl.DataFrame: ...


@dataclass(frozen=True, slots=True)
class AdbcTarget:
    driver: Literal["sqlite", "postgresql"]
    uri: str = field(repr=False)  # may hold a password


def adbc_target(database_url: str, *, statement_timeout_s: float | None = None) -> AdbcTarget | None:
    """Where ADBC connects for ``database_url``; ``None`` when it cannot (see the module docstring).

    SQLite: the file, opened read-only (``mode=ro``: a reader never creates or writes it).
    PostgreSQL: the same URL without SQLAlchemy's ``+psycopg`` driver suffix, which libpq does not
    know, and with the runtime's statement timeout, so a read cannot hang unbounded.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(database_url)
        return None if path is None else AdbcTarget("sqlite", f"{path.as_uri()}?mode=ro")
    if url.get_backend_name() != "postgresql":
        return None
    query = dict(url.query)
    if statement_timeout_s is not None:
        options = f"{query.get('options', '')} -c statement_timeout={round(statement_timeout_s * 1000)}"
        query["options"] = options.strip()
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    # libpq decodes %20 but not SQLAlchemy's '+' for a space (as in "-c statement_timeout=...").
    return AdbcTarget("postgresql", f"{base}?{urlencode(query, doseq=True, quote_via=quote)}" if query else base)


class AdbcReader:
    """PostgreSQL over ADBC in this process: one connection in autocommit until ``close``."""

    def __init__(self, target: AdbcTarget) -> None:
        if target.driver != "postgresql":
            raise ValueError("ADBC reads SQLite in a process of its own: SqliteArrowReader")
        import adbc_driver_postgresql.dbapi as postgres_dbapi  # type: ignore[import-untyped]

        self._connection: Any = postgres_dbapi.connect(target.uri, autocommit=True)

    def frame(self, query: str, schema: pl.Schema, params: Sequence[Any] = ()) -> pl.DataFrame:
        numbers = iter(range(1, len(params) + 1))
        numbered = _PLACEHOLDER.sub(lambda _match: f"${next(numbers)}", query)
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(numbered, parameters=tuple(params) if params else None)
            table: pa.Table = cursor.fetch_arrow_table()
        return to_schema(_frame_of(table), schema)

    def close(self) -> None:
        self._connection.close()


class SqliteArrowReader:
    """SQLite over ADBC in one child process (see the module docstring), started with ``spawn``
    so that it inherits no thread, lock or open file of this one; ``close`` ends it. As with any
    ``spawn``, the child imports the program's main module: a script must guard its work with
    ``if __name__ == "__main__"`` (the CLI, the server and pytest do)."""

    def __init__(self, target: AdbcTarget) -> None:
        if target.driver != "sqlite":
            raise ValueError("not a SQLite target")
        self.target = target
        self._child = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        # Started now, not at the first query: a build's first query runs while it holds the
        # writers' turn, which should not wait a second for an interpreter to start.
        self._child.submit(_load_driver).result()

    def frame(self, query: str, schema: pl.Schema, params: Sequence[Any] = ()) -> pl.DataFrame:
        stream = self._child.submit(_read_sqlite, self.target.uri, query, tuple(params)).result()
        return to_schema(_frame_of(pa.ipc.open_stream(stream).read_all()), schema)

    def close(self) -> None:
        self._child.shutdown(wait=True, cancel_futures=True)


_child_connections: dict[str, Any] = {}


def _load_driver() -> None:
    """In the child: load the driver, so that the first query pays for nothing else."""
    import adbc_driver_sqlite.dbapi  # noqa: F401


def _read_sqlite(uri: str, query: str, params: tuple[Any, ...]) -> bytes:
    """In the child: the query's result as an Arrow IPC stream. Its connection stays open for the
    next query (the child lives as long as its reader); autocommit, so each query is a fresh snapshot."""
    import adbc_driver_sqlite.dbapi as sqlite_dbapi

    connection = _child_connections.get(uri)
    if connection is None:
        connection = _child_connections[uri] = sqlite_dbapi.connect(uri, autocommit=True)
    with closing(connection.cursor()) as cursor:
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)})
        cursor.execute(query, parameters=params or None)
        table: pa.Table = cursor.fetch_arrow_table()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


Reader = AdbcReader | SqliteArrowReader


@contextmanager
def adbc_reader(database_url: str, *, statement_timeout_s: float | None = None) -> Iterator[Reader | None]:
    """A reader over ADBC for the block, or ``None`` where ADBC cannot reach the database."""
    target = adbc_target(database_url, statement_timeout_s=statement_timeout_s)
    if target is None:
        yield None
        return
    reader: Reader = SqliteArrowReader(target) if target.driver == "sqlite" else AdbcReader(target)
    try:
        yield reader
    finally:
        reader.close()


def _frame_of(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError("an Arrow table read as a series")
    return frame


@dataclass(frozen=True, slots=True)
class SessionReader:
    """The fallback: the same query on the session's own driver connection, in its transaction."""

    session: Session

    def frame(self, query: str, schema: pl.Schema, params: Sequence[Any] = ()) -> pl.DataFrame:
        connection = self.session.connection()
        driver: Any = connection.connection.dbapi_connection
        postgres = connection.dialect.name == "postgresql"
        cursor = driver.cursor()
        try:
            cursor.execute(_PLACEHOLDER.sub("%s", query) if postgres else query, tuple(params))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        read_as: pl.DataType = pl.Datetime("us") if postgres else pl.String()
        as_read = pl.Schema({name: read_as if isinstance(d, pl.Datetime) else d for name, d in schema.items()})
        return to_schema(pl.DataFrame(rows, schema=as_read, orient="row"), schema)


def to_schema(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Columns renamed by position and cast to ``schema``; stored timestamps read as UTC.

    An empty SQLite result has every column typed as integers (there was no value to type it
    from); casting an empty or all-null column is exact.
    """
    if frame.width != len(schema):
        raise ValueError(f"the query returned {frame.width} columns, the schema has {len(schema)}")
    frame = frame.rename(dict(zip(frame.columns, schema.names(), strict=True)))
    return frame.select(_cast(pl.col(name), frame.schema[name], dtype).alias(name) for name, dtype in schema.items())


def _cast(column: pl.Expr, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    if not isinstance(target, pl.Datetime):
        return column.cast(target)
    zone = target.time_zone or "UTC"
    if source == pl.String():
        parsed = column.str.to_datetime(SQLITE_TIMESTAMP, time_unit="us")
        return parsed.dt.replace_time_zone(zone)
    if isinstance(source, pl.Datetime):
        stored = column.dt.cast_time_unit("us")
        return stored.dt.replace_time_zone(zone) if source.time_zone is None else stored.dt.convert_time_zone(zone)
    return column.cast(pl.Datetime("us")).dt.replace_time_zone(zone)  # nulls only (an untyped empty column)
