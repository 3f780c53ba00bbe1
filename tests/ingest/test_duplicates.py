"""Duplicates as a retrying sender makes them: the same batch again, the same message twice in one
batch, a replay that races past the check, and the same id from another source."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from privacy.identifiers import IdentifierKind
from server.runtime import Runtime
from server.storage.tables import EventRow
from tests.ingest.batches import NOW, event, fixed_clock, footprint, ingest, message_key, subject_of


@pytest.fixture
def clocked(runtime: Runtime) -> Runtime:
    return fixed_clock(runtime)


def test_the_same_batch_twice_adds_nothing_the_second_time(clocked: Runtime) -> None:
    batch = [event(anonymous_id=f"dev-{n}", email=f"person{n}@example.org") for n in range(5)]
    first = ingest(clocked, batch)
    after_first = footprint(clocked)
    again = ingest(clocked, batch)
    assert (first.accepted, first.duplicates) == (5, 0)
    assert (again.received, again.accepted, again.duplicates, again.rejected) == (5, 0, 5, [])
    assert (again.new_subjects, again.merges) == (0, 0)
    assert footprint(clocked) == after_first == (5, 10, 5)


def test_duplicates_within_one_batch_keep_the_first(clocked: Runtime) -> None:
    first = event(message_id="m-dup", anonymous_id="dev-first", category="Sports")
    later = event(message_id="m-dup", anonymous_id="dev-later", category="Travel")
    result = ingest(clocked, [first, later, event(anonymous_id="dev-other")])
    assert (result.accepted, result.duplicates, result.rejected) == (2, 1, [])
    with clocked.sessions() as session:
        stored = session.execute(
            select(EventRow.subject_id, EventRow.topics).where(EventRow.message_key == message_key(clocked, "m-dup"))
        ).one()
    assert tuple(stored) == (subject_of(clocked, IdentifierKind.DEVICE_ID, "dev-first"), "sports")
    assert subject_of(clocked, IdentifierKind.DEVICE_ID, "dev-later") is None, "the dropped copy links nothing"


def test_a_duplicate_that_is_also_broken_counts_once(clocked: Runtime) -> None:
    result = ingest(clocked, [event(message_id="m-1", anonymous_id="dev-1"), event(message_id="m-1", event="nope")])
    assert result.accepted + result.duplicates + len(result.rejected) == result.received == 2


def test_the_database_itself_refuses_a_duplicate(clocked: Runtime) -> None:
    """The (source, event_id) constraint is in the schema, so a replay racing past the check fails."""
    ingest(clocked, [event(message_id="m-raced", anonymous_id="dev-1")])
    subject = subject_of(clocked, IdentifierKind.DEVICE_ID, "dev-1")
    assert subject is not None
    replay = EventRow(
        source="web-test",
        message_key=message_key(clocked, "m-raced"),
        subject_id=subject,
        origin_subject_id=subject,
        type="page_view",
        channel="web",
        occurred_at=NOW - timedelta(minutes=2),
        received_at=NOW,
    )
    with clocked.sessions() as session:
        session.add(replay)
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
    assert footprint(clocked) == (1, 1, 1)


def test_the_same_message_id_from_another_source_is_not_a_duplicate(clocked: Runtime) -> None:
    batch = [event(message_id="m-shared", anonymous_id="dev-1")]
    assert ingest(clocked, batch, source="web-test").accepted == 1
    from_app = ingest(clocked, batch, source="app-test")
    assert (from_app.accepted, from_app.duplicates) == (1, 0)
    with clocked.sessions() as session:
        sources = sorted(
            session.scalars(select(EventRow.source).where(EventRow.message_key == message_key(clocked, "m-shared")))
        )
    assert sources == ["app-test", "web-test"]
