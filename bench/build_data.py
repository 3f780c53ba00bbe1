"""The batch build bench's data: demo events loaded straight into a migrated database, and ADBC helpers.

Loading goes past ingestion on purpose (``bench/ingest.py`` measures that; through it 10 M events
would take minutes): demo people are drawn in chunks of ~1 M events, each chunk's events are
shaped as ingestion stores them (``server.ingest.store.event_rows``: known topic ids joined by
';', the page category's topic added, unknown event types dropped as validation would) and
appended to ``events`` with ADBC's bulk ingest (binary ``COPY`` on PostgreSQL, a prepared
``INSERT`` in one transaction on SQLite). Each chunk's people get ``subjects`` rows and 80 % of
them a ``consent_state`` row granting ``profiling``. Subject ids are random 63-bit integers, as
the product draws them, so that the build's subject-id ranges hold about as many subjects each.

Every process that opens a SQLite file here uses ADBC only or SQLAlchemy only, never both at
once: ADBC's SQLite driver carries its own copy of SQLite, and two copies in one process break
each other's locks (``server.storage.arrow_reads``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
import pyarrow as pa
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from privacy.purposes import Purpose
from server.demo import generate_population
from server.frames.profiles import DAILY_SCHEMA, INTEREST_SCHEMA, SUMMARY_SCHEMA
from server.frames.vocabulary import CHANNELS, EVENT_TYPES
from server.storage import migrate
from server.storage.engine import build_engine
from server.storage.tables import ProfileDailyRow, ProfileInterestRow, ProfileSummaryRow
from server.storage.upsert import table_of
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "CONSENTING_SHARE",
    "STATE_FRAMES",
    "AdbcFrames",
    "Loaded",
    "adbc_connection",
    "load_events",
    "prepare_database",
    "read_frame",
    "state_table",
    "write_frame",
]

EVENTS_PER_PERSON: Final = 50  # the generator's mean
PEOPLE_PER_CHUNK: Final = 20_000  # ~1 M events: a chunk's frames stay well under a GB
CONSENTING_SHARE: Final = 0.8
SOURCE: Final = "bench-build"
SQLITE_TIMESTAMP: Final = "%Y-%m-%d %H:%M:%S%.6f"  # as server.storage.bulk writes them
SQLITE_READ_TIMESTAMP: Final = "%Y-%m-%d %H:%M:%S%.f"
SQLITE_BATCH_ROWS: Final = 1_000_000_000
"""One Arrow batch per SQLite result: the driver types a column from its first batch's values."""

STATE_FRAMES: Final = (
    ("profile_daily", ProfileDailyRow, DAILY_SCHEMA),
    ("profile_summary", ProfileSummaryRow, SUMMARY_SCHEMA),
    ("profile_interests", ProfileInterestRow, INTEREST_SCHEMA),
)
"""(table, model, schema) of the three state frames, in ``ProfileState`` order."""


def state_table(contender: str, table: str) -> str:
    """Where a baseline writes its copy of a state table (``profile_daily`` -> ``bench_duckdb_profile_daily``)."""
    return f"bench_{contender}_{table}"


# --- ADBC ---------------------------------------------------------------------------------------------


def adbc_uri(url: str) -> tuple[str, str]:
    """(driver, uri) for a SQLAlchemy URL: the SQLite file, or the URL libpq understands."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise ValueError("the bench needs a SQLite file")
        return "sqlite", Path(parsed.database).resolve().as_uri()
    return "postgresql", parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def adbc_connection(url: str) -> Iterator[Any]:
    """One connection, not in autocommit: ``write_frame`` commits each frame it appends."""
    driver, uri = adbc_uri(url)
    if driver == "sqlite":
        import adbc_driver_sqlite.dbapi as sqlite_dbapi

        connection = sqlite_dbapi.connect(uri)
    else:
        import adbc_driver_postgresql.dbapi as postgres_dbapi  # type: ignore[import-untyped]

        connection = postgres_dbapi.connect(uri)
    with closing(connection):
        yield connection


def read_frame(connection: Any, query: str, schema: pl.Schema, params: tuple[Any, ...] = ()) -> pl.DataFrame:
    """A query's result as a frame of ``schema``; stored timestamps (SQLite text, PostgreSQL naive) as UTC."""
    sqlite = connection.adbc_get_info()["vendor_name"].lower() == "sqlite"
    if not sqlite:
        numbers = iter(range(1, len(params) + 1))
        query = "".join(f"${next(numbers)}" if ch == "?" else ch for ch in query)
    with closing(connection.cursor()) as cursor:
        if sqlite:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)})
        cursor.execute(query, parameters=params or None)
        table: pa.Table = cursor.fetch_arrow_table()
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError("an Arrow table read as a series")
    frame = frame.rename(dict(zip(frame.columns, schema.names(), strict=True)))

    def typed(name: str, dtype: pl.DataType) -> pl.Expr:
        column, source = pl.col(name), frame.schema[name]
        if not isinstance(dtype, pl.Datetime):
            return column.cast(dtype)
        if source == pl.String():
            return column.str.to_datetime(SQLITE_READ_TIMESTAMP, time_unit="us").dt.replace_time_zone("UTC")
        if isinstance(source, pl.Datetime):
            return column.dt.cast_time_unit("us").dt.replace_time_zone("UTC")
        return column.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")  # all null: typed as integers

    return frame.select(typed(name, dtype).alias(name) for name, dtype in schema.items())


@dataclass(frozen=True, slots=True)
class AdbcFrames:
    """``read_frame`` on one connection, as the product's readers answer (``FrameReader``)."""

    connection: Any

    def frame(self, query: str, schema: pl.Schema, params: Sequence[Any] = ()) -> pl.DataFrame:
        return read_frame(self.connection, query, schema, tuple(params))


def write_frame(connection: Any, table: str, frame: pl.DataFrame, *, mode: str = "append") -> None:
    """Bulk-append ``frame`` to ``table`` (``mode="create"``: a new table): timestamps stored as the
    product stores them (SQLite: naive UTC text; PostgreSQL: ``timestamp`` holding UTC)."""
    sqlite = connection.adbc_get_info()["vendor_name"].lower() == "sqlite"
    naive = pl.col(pl.Datetime).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    stored = frame.with_columns(naive.dt.strftime(SQLITE_TIMESTAMP) if sqlite else naive)
    if sqlite:
        stored = stored.with_columns(pl.col(pl.Boolean).cast(pl.Int64))
    with closing(connection.cursor()) as cursor:
        cursor.adbc_ingest(table, stored.to_arrow(), mode=mode)
    connection.commit()


# --- the database -------------------------------------------------------------------------------------


def prepare_database(url: str, contenders: tuple[str, ...]) -> None:
    """Migrate, and create each baseline's copies of the state tables with the same keys."""
    engine = build_engine(url)
    try:
        migrate.upgrade(engine)
        metadata = MetaData()
        for contender in contenders:
            for name, model, _schema in STATE_FRAMES:
                copy = table_of(model).to_metadata(metadata, name=state_table(contender, name))
                for index in list(copy.indexes):  # no reader of the copies: keys only
                    copy.indexes.discard(index)
                for constraint in copy.constraints:  # constraint names are global on PostgreSQL
                    constraint.name = f"{constraint.name}_{contender}" if isinstance(constraint.name, str) else None
        metadata.create_all(engine)
    finally:
        engine.dispose()


def analyze(url: str) -> None:
    """Planner statistics after a bulk load, as a DBA would take them (PostgreSQL: also the
    visibility map, which lets the consent semi-join read the index only)."""
    engine = build_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
        else:
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@dataclass(frozen=True, slots=True)
class Loaded:
    events: int
    subjects: int
    consenting: int
    consenting_events: int


def chunk_events(
    chunk: int, people: int, *, end: datetime, taxonomy: Taxonomy, first_key: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(events, subjects, consent_state) rows of one chunk of demo people."""
    generated = generate_population(people=people, seed=1_000 + chunk, end=end, taxonomy=taxonomy).events
    split = taxonomy.split_known(pl.col("topics"))
    known = pl.concat_list(split.known, taxonomy.category_topic(pl.col("category"))).list.eval(
        pl.element().drop_nulls().unique(maintain_order=True)
    )
    person = pl.coalesce("user_id", "anonymous_id", "partner_user_id", "email", "phone")
    events = generated.filter(
        pl.col("event").is_in(sorted(EVENT_TYPES))
        & pl.col("channel").is_in(sorted(CHANNELS))
        & pl.col("timestamp").is_not_null()
        & person.is_not_null()
    ).with_columns(person=person, topics_known=known)
    keys = events.select(pl.col("person").unique(maintain_order=True))
    ids = pl.Series("subject_id", rng.integers(0, 2**63 - 1, size=keys.height, dtype=np.int64))
    subjects = keys.with_columns(ids)
    message_keys = np.arange(first_key, first_key + events.height, dtype=">u8").view("S8")
    rows = (
        events.join(subjects, on="person", how="left")
        .with_columns(message_key=pl.Series(message_keys, dtype=pl.Binary))
        .select(
            pl.lit(SOURCE).alias("source"),
            "message_key",
            "subject_id",
            pl.col("subject_id").alias("origin_subject_id"),
            pl.col("event").alias("type"),
            "channel",
            pl.col("timestamp").alias("occurred_at"),
            pl.lit(end, dtype=pl.Datetime("us", "UTC")).alias("received_at"),
            pl.when(pl.col("topics_known").list.len() > 0).then(pl.col("topics_known").list.join(";")).alias("topics"),
            "amount",
            pl.col("currency").str.slice(0, 3),
            pl.col("campaign").str.slice(0, 64),
            pl.col("region").str.slice(0, 16),
        )
    )
    subject_rows = subjects.select(
        pl.col("subject_id").alias("id"),
        pl.lit(end, dtype=pl.Datetime("us", "UTC")).alias("created_at"),
        pl.lit(0, dtype=pl.Int32).alias("created_rank"),
        pl.lit("active").alias("status"),
        pl.lit(None, dtype=pl.Int64).alias("merged_into"),
    )
    granted = subjects.filter(pl.Series(rng.random(subjects.height) < CONSENTING_SHARE))
    consent_rows = granted.select(
        "subject_id",
        pl.lit(Purpose.PROFILING.value).alias("purpose"),
        pl.lit(0, dtype=pl.Int32).alias("partner_id"),
        pl.lit(value=True).alias("granted"),
        pl.lit(end, dtype=pl.Datetime("us", "UTC")).alias("since"),
    )
    return rows, subject_rows, consent_rows


def load_events(url: str, *, events: int, end: datetime, taxonomy: Taxonomy, seed: int = 1) -> Loaded:
    """About ``events`` demo events (whole chunks of people) into the migrated database at ``url``."""
    people = max(1, events // EVENTS_PER_PERSON)
    rng = np.random.default_rng(seed)
    loaded = Loaded(0, 0, 0, 0)
    with adbc_connection(url) as connection:
        for chunk, start in enumerate(range(0, people, PEOPLE_PER_CHUNK)):
            size = min(PEOPLE_PER_CHUNK, people - start)
            rows, subjects, consents = chunk_events(
                chunk, size, end=end, taxonomy=taxonomy, first_key=loaded.events, rng=rng
            )
            write_frame(connection, "subjects", subjects)
            write_frame(connection, "consent_state", consents)
            write_frame(connection, "events", rows)
            consenting_events = rows.join(consents.select("subject_id"), on="subject_id", how="semi").height
            loaded = Loaded(
                events=loaded.events + rows.height,
                subjects=loaded.subjects + subjects.height,
                consenting=loaded.consenting + consents.height,
                consenting_events=loaded.consenting_events + consenting_events,
            )
    return loaded
