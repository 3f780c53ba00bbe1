"""A build that fails says where and what kind of error, never the error's text: neither in the run's
record (which analysts read) nor in a log line, however logging is set up.

A driver's message can quote the values of a statement: PostgreSQL's ``DETAIL: Key (subject_id,
day, type, channel)=(…)`` names a subject and what it did. The server formats its log lines
without exception text (``server.observability.logs``), but ``audience build`` runs with logging
as Python leaves it, whose last-resort handler prints a record's traceback and message in full;
so the build must not hand its log records the exception at all.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from datetime import timedelta

import polars as pl
import pytest
from sqlalchemy import select, text

from server.profiles.build import run_build, streaming_state
from server.profiles.build_runs import BuildErrorCode, BuildStatus
from server.profiles.config import InterestConfig
from server.profiles.state import ProfileState
from server.runtime import Runtime
from server.storage.engine import is_sqlite
from server.storage.tables import SubjectRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest

PEOPLE = [f"failing.build.{n}@example.org" for n in range(4)]


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What Python's own handler would print for the build's records (the CLI configures none)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter())
    logger = logging.getLogger("audience")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def profiled(runtime: Runtime) -> Runtime:
    runtime = fixed_clock(runtime)
    batch = [
        event(
            email=email,
            consent_purposes=["analytics", "profiling"],
            topics=["travel"],
            timestamp=NOW - timedelta(hours=1),
        )
        for email in PEOPLE
    ]
    assert ingest(runtime, batch).accepted == len(PEOPLE)
    return runtime


def subject_ids(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return [str(subject) for subject in session.scalars(select(SubjectRow.id))]


def duplicated_row(events: pl.LazyFrame, config: InterestConfig, /) -> ProfileState:
    """A state the database refuses: one daily row changed and written twice (a duplicate key,
    quoted by PostgreSQL; a build writes only rows that differ from those stored)."""
    state = streaming_state(events, config)
    changed = state.daily.head(1).with_columns(pl.col("events") + 1)
    return dataclasses.replace(state, daily=pl.concat([state.daily.slice(1), changed, changed]))


def assert_says_nothing_of_the_data(said: str, runtime: Runtime) -> None:
    for subject in subject_ids(runtime):
        assert subject not in said, "a subject id in the text"
    for words in ("Traceback", "duplicate key", "UNIQUE constraint", "DETAIL", "travel"):
        assert words not in said, words


def test_a_build_refused_by_the_database_logs_and_records_no_text_of_the_error(
    profiled: Runtime, logged: io.StringIO
) -> None:
    run = run_build(profiled, partitions=1, evaluate=duplicated_row)

    assert run.status is BuildStatus.FAILED
    assert run.error_code == BuildErrorCode.BUILD_FAILED
    assert run.error_message is not None
    assert "in partition 1 of 1" in run.error_message
    assert_says_nothing_of_the_data(run.error_message, profiled)
    assert "profile build failed" in logged.getvalue()
    assert_says_nothing_of_the_data(logged.getvalue(), profiled)


@pytest.mark.parametrize("backend", ["postgresql"])  # a SQLite file has no server to drop the connection
def test_a_database_connection_killed_mid_build_fails_the_run_without_text(
    profiled: Runtime, logged: io.StringIO
) -> None:
    """The build's own connections are terminated between its read and its write."""
    assert not is_sqlite(profiled.engine)

    def terminate_the_others(events: pl.LazyFrame, config: InterestConfig, /) -> ProfileState:
        with profiled.engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        return streaming_state(events, config)

    run = run_build(profiled, partitions=1, evaluate=terminate_the_others)

    assert run.status is BuildStatus.FAILED
    assert run.error_code == BuildErrorCode.UNREACHABLE
    assert run.error_message is not None
    assert_says_nothing_of_the_data(run.error_message, profiled)
    assert_says_nothing_of_the_data(logged.getvalue(), profiled)
    assert run_build(profiled, partitions=1).status is BuildStatus.SUCCEEDED, "the next build is not held up"
