"""Bulk writes store every row exactly as the ORM would read it back, however many rows there are.

SQLite statements carry several hundred rows each, so the sizes probe the edges: nothing, one
row, one short of a statement, exactly one, one more, and several with a remainder.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from sqlalchemy import select

from server.runtime import Runtime
from server.storage.bulk import SQLITE_ROWS_PER_STATEMENT, bulk_insert, bulk_upsert
from server.storage.tables import ConsentStateRow, EventRow, SubjectRow

AT = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
SIZES = [0, 1, SQLITE_ROWS_PER_STATEMENT - 1, SQLITE_ROWS_PER_STATEMENT, SQLITE_ROWS_PER_STATEMENT + 1, 1_234]


EVENT_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "message_key": pl.Binary(),
        "subject_id": pl.Int64(),
        "origin_subject_id": pl.Int64(),
        "type": pl.String(),
        "channel": pl.String(),
        "occurred_at": pl.Datetime("us", "UTC"),
        "received_at": pl.Datetime("us", "UTC"),
        "topics": pl.String(),
        "amount": pl.Float64(),
        "currency": pl.String(),
        "campaign": pl.String(),
        "region": pl.String(),
    }
)


def events(count: int, *, first: int = 0) -> pl.DataFrame:
    """Rows with every kind of value the table holds, NULLs included, in ``message_key`` order."""
    return pl.DataFrame(
        [
            (
                "web",
                f"m-{i:06d}".encode(),
                i,
                i + 1,
                "purchase",
                "web",
                AT + timedelta(seconds=i),
                AT,
                None if i % 3 else "sports;news",
                None if i % 2 else i / 4,
                None if i % 2 else "EUR",
                None,
                "DE-BE",
            )
            for i in range(first, first + count)
        ],
        schema=EVENT_SCHEMA,
        orient="row",
    )


def stored_events(runtime: Runtime) -> pl.DataFrame:
    with runtime.sessions() as session:
        rows = session.scalars(select(EventRow).order_by(EventRow.message_key)).all()
    return pl.DataFrame(
        [tuple(getattr(row, column) for column in EVENT_SCHEMA) for row in rows], schema=EVENT_SCHEMA, orient="row"
    )


@pytest.mark.parametrize("count", SIZES)
def test_every_row_lands_once_and_reads_back_as_written(runtime: Runtime, count: int) -> None:
    frame = events(count)
    with runtime.sessions.begin() as session:
        bulk_insert(session, EventRow, frame)
    assert stored_events(runtime).equals(frame)


def test_conflicts_are_ignored_within_a_write_and_against_stored_rows(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        bulk_insert(session, EventRow, events(300))
    # Rows 0-299 are stored; 300-1,233 are new, and each of them comes twice, far apart.
    again = pl.concat([events(1_234), events(934, first=300)])
    with runtime.sessions.begin() as session:
        bulk_insert(session, EventRow, again)
    assert stored_events(runtime).equals(events(1_234))


def consent_states(subjects: pl.Series, granted: bool, since: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {"subject_id": subjects, "purpose": "analytics", "partner_id": 0, "granted": granted, "since": since},
        schema_overrides={"partner_id": pl.Int32, "since": pl.Datetime("us", "UTC")},
    )


def test_an_upsert_replaces_only_where_the_new_row_is_not_older(runtime: Runtime) -> None:
    subjects = pl.int_range(1, 1_235, eager=True, dtype=pl.Int64).alias("subject_id")
    with runtime.sessions.begin() as session:
        bulk_insert(
            session,
            SubjectRow,
            pl.DataFrame({"id": subjects, "created_at": AT, "status": "active"}),
            ignore_conflicts=False,
        )
        bulk_upsert(session, ConsentStateRow, consent_states(subjects, True, AT), keys=KEYS, newer="since")
    odd, even = subjects.filter(subjects % 2 == 1), subjects.filter(subjects % 2 == 0)
    later = consent_states(odd, False, AT + timedelta(hours=1))
    earlier = consent_states(even, False, AT - timedelta(hours=1))
    with runtime.sessions.begin() as session:
        bulk_upsert(session, ConsentStateRow, pl.concat([later, earlier]), keys=KEYS, newer="since")
    with runtime.sessions() as session:
        stored = {row.subject_id: (row.granted, row.since) for row in session.scalars(select(ConsentStateRow))}
    assert len(stored) == subjects.len()
    assert all(stored[s] == (False, AT + timedelta(hours=1)) for s in odd)
    assert all(stored[s] == (True, AT) for s in even)


KEYS = ["subject_id", "purpose", "partner_id"]
