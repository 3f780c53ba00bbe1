"""The migrations and the models describe the same database, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from privacy.identifiers import IdentifierKind, NormalizedIdentifier
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.storage import migrate
from server.storage.base import Base
from server.storage.tables import AuditHeadRow, EventRow, IngestTallyRow
from server.subjects.service import create_subject, read_pii, write_pii


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


@pytest.mark.parametrize(
    "revision",
    ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011", "0012", "0013", "0014"],
)
def test_each_revision_downgrades_cleanly(runtime: Runtime, revision: str) -> None:
    migrate.downgrade(runtime.engine, "base")
    migrate.upgrade(runtime.engine, revision)
    migrate.upgrade(runtime.engine)
    assert migrate.is_at_head(runtime.engine)


def test_rekeying_events_keeps_every_stored_event_both_ways(runtime: Runtime) -> None:
    """0006 drops the surrogate id: events stored before it survive the rebuild, and a downgrade
    numbers them again; the sender's key stays unique throughout (0007 keeps it as a keyed hash)."""
    stored_at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    columns = "source, event_id, subject_id, origin_subject_id, type, channel, occurred_at, received_at"
    values = ", ".join(
        f"('web', 'm-{n}', {n % 3}, {n % 3}, 'page_view', 'web', '2026-11-01 11:00:00', '2026-11-01 12:00:00')"
        for n in range(50)
    )
    migrate.downgrade(runtime.engine, "0005")
    with runtime.engine.begin() as connection:
        connection.exec_driver_sql(f"INSERT INTO events ({columns}) VALUES {values}")
    migrate.upgrade(runtime.engine, message_keys=runtime.kit.message_keys)
    assert schema_differences(runtime) == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EventRow)) == 50
        session.add(
            EventRow(
                source="web",
                message_key=runtime.kit.message_keys.digest_many(["m-7"])[0],
                subject_id=1,
                origin_subject_id=1,
                type="click",
                channel="web",
                occurred_at=stored_at,
                received_at=stored_at,
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()
    migrate.downgrade(runtime.engine, "0005")
    with runtime.engine.connect() as connection:
        ids = connection.exec_driver_sql("SELECT id FROM events").scalars().all()
        assert len(ids) == len(set(ids)) == 50
    migrate.upgrade(runtime.engine, message_keys=runtime.kit.message_keys)
    assert migrate.is_at_head(runtime.engine)


def test_a_downgrade_and_upgrade_keep_every_person(runtime: Runtime) -> None:
    """Rebuilding a parent table on SQLite (0007 drops ``subjects.created_rank``) must not cascade:
    with foreign keys on, dropping the old copy deleted every data key, identity and PII row."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        email = NormalizedIdentifier(IdentifierKind.EMAIL, "ana@example.org")
        subject = create_subject(unit.session, identifiers=[email], kit=unit.kit, now=unit.clock())
        write_pii(unit.session, subject, {"name": "Ana Lima"}, unit.kit, unit.clock())
    before = person_rows(runtime)
    migrate.downgrade(runtime.engine, "0006")
    migrate.upgrade(runtime.engine, message_keys=runtime.kit.message_keys)
    assert person_rows(runtime) == before
    with runtime.sessions() as session:
        assert read_pii(session, subject, runtime.kit) == {"name": "Ana Lima"}


def person_rows(runtime: Runtime) -> dict[str, int]:
    with runtime.engine.connect() as connection:
        return {
            table: int(connection.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0)
            for table in ("subjects", "subject_keys", "identities", "subject_pii")
        }


def test_events_stored_before_the_tallies_count_as_accepted_on_the_day_received(runtime: Runtime) -> None:
    """0011 starts each source's tallies from its stored events, so tallies and rows agree."""
    migrate.downgrade(runtime.engine, "0010")
    received = {
        "web": ["2026-11-01 23:59:59.999999", "2026-11-01 00:00:00", "2026-11-02 00:00:00"],
        "app": ["2026-11-02 08:00:00"],
    }
    with runtime.sessions.begin() as session:
        session.execute(
            insert(EventRow),
            [
                {
                    "source": source,
                    "message_key": bytes([n]) * 32,
                    "subject_id": 1,
                    "origin_subject_id": 1,
                    "type": "page_view",
                    "channel": "web",
                    "occurred_at": datetime.fromisoformat(at).replace(tzinfo=UTC) - timedelta(hours=1),
                    "received_at": datetime.fromisoformat(at).replace(tzinfo=UTC),
                }
                for n, (source, at) in enumerate((s, at) for s, times in received.items() for at in times)
            ],
        )
    migrate.upgrade(runtime.engine)
    first = (datetime(2026, 11, 1).date() - datetime(1970, 1, 1).date()).days
    with runtime.sessions() as session:
        tallies = session.execute(
            select(IngestTallyRow.source, IngestTallyRow.day, IngestTallyRow.outcome, IngestTallyRow.count)
        )
        assert sorted(tuple(row) for row in tallies) == [
            ("app", first + 1, "accepted", 1),
            ("web", first, "accepted", 2),
            ("web", first + 1, "accepted", 1),
        ]
