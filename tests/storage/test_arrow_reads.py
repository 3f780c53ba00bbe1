"""Bulk Arrow reads give the frame the rows hold, exactly, see each commit and nothing uncommitted,
and never bring a second copy of SQLite into this process.

The ADBC reader and the row-by-row fallback must agree on every value: floats to the bit,
timestamps to the microsecond as UTC, nulls where they were, on a result longer than one of the
SQLite driver's default batches whose first rows are all null (the driver types a column from
its first batch). ADBC's SQLite driver links its own SQLite: loaded beside the engine's, the two
broke each other's locks on the same file (a build's commit failed with "locking protocol").
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, select

from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.storage.arrow_reads import SessionReader, adbc_reader, adbc_target
from server.storage.base import UtcDateTime

PROBES = MetaData()
ROWS = Table(
    "arrow_probe",
    PROBES,
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("amount", Float),
    Column("label", String(32)),
    Column("at", UtcDateTime),
)
SCHEMA = pl.Schema({"n": pl.Int64(), "amount": pl.Float64(), "label": pl.String(), "at": pl.Datetime("us", "UTC")})
NULL_ROWS = 3_000  # beyond the SQLite driver's default batch of 1,024 rows
START = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
MAPS = Path("/proc/self/maps")
QUERY = "SELECT n, amount, label, at FROM arrow_probe WHERE n >= ? ORDER BY n"


@pytest.fixture
def probes(runtime: Runtime) -> Iterator[Runtime]:
    PROBES.create_all(runtime.engine)
    try:
        yield runtime
    finally:
        PROBES.drop_all(runtime.engine)


def stored_rows() -> pl.DataFrame:
    """Nulls first; then values that text or a lossy cast would change."""
    nulls: list[None] = [None] * NULL_ROWS
    return pl.DataFrame(
        {
            "n": range(NULL_ROWS + 5),
            "amount": [*nulls, 0.1 + 0.2, 1e-300, -2.5e15, 1 / 3, 7.0],
            "label": [*nulls, "a", "b;c", "é✓", "", "x" * 32],
            "at": [*nulls, *(START + timedelta(microseconds=k * 1_000_001) for k in range(5))],
        },
        schema=SCHEMA,
    )


def test_the_arrow_reader_and_the_fallback_read_the_same_exact_values(probes: Runtime) -> None:
    expected = stored_rows()
    with probes.sessions.begin() as session:
        session.execute(ROWS.insert(), expected.to_dicts())
    url = probes.settings.effective_database_url
    with adbc_reader(url) as reader, probes.sessions() as session:
        assert reader is not None
        over_adbc = reader.frame(QUERY, SCHEMA, (0,))
        fallback = SessionReader(session).frame(QUERY, SCHEMA, (0,))
        empty = reader.frame(QUERY, SCHEMA, (10**9,))
    assert_frame_equal(over_adbc, expected, check_exact=True)
    assert_frame_equal(fallback, expected, check_exact=True)
    assert empty.schema == SCHEMA
    assert empty.height == 0


def test_each_read_sees_the_last_commit_and_nothing_uncommitted(probes: Runtime) -> None:
    rows = stored_rows()
    with adbc_reader(probes.settings.effective_database_url) as reader:
        assert reader is not None
        with probes.unit_of_work(SYSTEM_ACTOR) as unit:
            unit.session.execute(ROWS.insert(), rows.head(10).to_dicts())
            for _ in range(3):
                assert reader.frame(QUERY, SCHEMA, (0,)).height == 0, "uncommitted rows are not seen"
        assert reader.frame(QUERY, SCHEMA, (0,)).height == 10, "each query sees the last commit"
        with probes.unit_of_work(SYSTEM_ACTOR) as unit:
            unit.session.execute(ROWS.insert(), rows.slice(10, 10).to_dicts())
    with probes.sessions() as session:
        assert len(session.execute(select(ROWS.c.n)).all()) == 20


@pytest.mark.skipif(not MAPS.exists(), reason="needs /proc/self/maps (Linux)")
def test_sqlite_is_read_over_adbc_in_another_process(probes: Runtime) -> None:
    if probes.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with adbc_reader(probes.settings.effective_database_url) as reader:
        assert reader is not None
        assert reader.frame(QUERY, SCHEMA, (0,)).height == 0
    assert "adbc_driver_sqlite" not in MAPS.read_text(), "a second SQLite library was loaded into this process"


def test_adbc_targets() -> None:
    assert adbc_target("sqlite://") is None
    assert adbc_target("sqlite:///:memory:") is None
    postgres = adbc_target("postgresql+psycopg://u:p%40ss@db:5432/audience?sslmode=require", statement_timeout_s=2.5)
    assert postgres is not None
    assert postgres.uri == (
        "postgresql://u:p%40ss@db:5432/audience?sslmode=require&options=-c%20statement_timeout%3D2500"
    )
    assert "p%40ss" not in repr(postgres), "the password stays out of reprs"
