"""Retention: what is past its time goes, in bulk, and nothing else does (docs/retention.md).

Time is moved, never waited for: data is written under a fixed clock and purged under a later
one, a step either side of each time-to-live (defaults: events 396 days by whole UTC days,
anonymous subjects 90 days, receipts 1096 days).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from privacy.identifiers import IdentifierKind
from privacy.keyring import Keyring, dumps_keyring
from server.auth.principal import SYSTEM_ACTOR
from server.profiles.build import run_build
from server.profiles.build_runs import BuildStatus
from server.retention.purge import AUDIT_ACTION, purge
from server.retention.report import Category, PurgeReport
from server.retention.run import run_purge
from server.retention.schedule import ScheduledPurge
from server.runtime import Runtime
from server.settings import SettingsError, load_settings
from server.storage.engine import build_engine, session_factory
from server.storage.subject_tables import SUBJECT_TABLES
from server.storage.tables import (
    AuditEntryRow,
    ErasureReceiptRow,
    EventRow,
    MessageReceiptRow,
    ProfileDailyRow,
    ProfileSummaryRow,
    SubjectRequestRow,
    SubjectRow,
)
from tests.ingest.batches import NOW, count, event, fixed_clock, ingest, subject_of
from tests.profiles.states import assert_same_state, stored_state
from tests.support.cli import run_audience
from tests.support.live_server import serving
from tests.support.state import every_table

DAY = timedelta(days=1)
MIDNIGHT = NOW.replace(hour=0, minute=0)
EVENTS_KEPT_TO = MIDNIGHT + 397 * DAY - timedelta(microseconds=1)
"""The last moment an event of NOW's day is kept (its day is 396 days before this one)."""
EVENTS_GONE_FROM = MIDNIGHT + 397 * DAY
PROFILED = ["analytics", "profiling"]


def at(runtime: Runtime, when: datetime) -> Runtime:
    return fixed_clock(runtime, when)


def purge_at(runtime: Runtime, when: datetime, *, dry_run: bool = False) -> PurgeReport:
    with at(runtime, when).unit_of_work(SYSTEM_ACTOR) as unit:
        return purge(unit, dry_run=dry_run)


def anonymous(runtime: Runtime, device: str, when: datetime) -> int:
    """A subject no identifier reaches: seen once through a device id, since unlinked."""
    assert ingest(at(runtime, when), [event(anonymous_id=device, timestamp=when - timedelta(minutes=1))]).accepted == 1
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, device)
    assert subject is not None
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.execute(text("DELETE FROM identities WHERE subject_id = :s"), {"s": subject})
    return subject


def rows_naming(runtime: Runtime, subject: int) -> dict[str, int]:
    """Rows of every table of the registry holding ``subject`` in any of its subject columns."""
    held = {}
    with runtime.engine.connect() as connection:
        for declared in SUBJECT_TABLES:
            where = " OR ".join(f"{column} = :s" for column in declared.columns)
            held[declared.name] = connection.scalar(
                text(f"SELECT count(*) FROM {declared.name} WHERE {where}"), {"s": subject}
            )
    return {name: n for name, n in held.items() if n}


def person(runtime: Runtime) -> int:
    """ana: a purchase on NOW's day and a page view a month later, both on travel, profiled."""
    first = event(
        email="ana@example.org", event="purchase", amount=10.0, currency="EUR", topics=["travel"], message_id="ana-1"
    )
    assert ingest(at(runtime, NOW), [first | {"consent_purposes": PROFILED}]).accepted == 1
    later = NOW + 30 * DAY
    second = event(email="ana@example.org", topics=["travel"], timestamp=later - timedelta(minutes=1))
    assert ingest(at(runtime, later), [second | {"consent_purposes": PROFILED}]).accepted == 1
    subject = subject_of(runtime, IdentifierKind.EMAIL, "ana@example.org")
    assert subject is not None
    return subject


def test_an_event_is_kept_through_its_396th_day_and_deleted_the_next(runtime: Runtime) -> None:
    ana = person(runtime)
    before = every_table(runtime)

    kept = purge_at(runtime, EVENTS_KEPT_TO)

    assert not kept
    assert every_table(runtime) == before, "nothing expired: nothing changed, not even the audit log"
    gone = purge_at(runtime, EVENTS_GONE_FROM)
    assert gone.removed[Category.EVENTS]["events"] == 1
    assert gone.removed[Category.EVENTS]["profile_daily"] == 1
    assert gone.receipts_kept == 1
    assert count(runtime, EventRow, EventRow.subject_id == ana) == 1
    with runtime.sessions() as session:
        summary = session.get(ProfileSummaryRow, ana)
        assert summary is not None
        assert (summary.first_purchase, summary.last_purchase) == (None, None), "the only purchase went"
        assert summary.first_seen == NOW + 30 * DAY - timedelta(minutes=1)


def test_the_state_left_is_the_state_a_build_makes_from_the_events_left(runtime: Runtime) -> None:
    person(runtime)
    for n in range(3):  # several subjects and days on both sides of the cutoff
        when = NOW + n * 200 * DAY
        batch = [
            event(email=f"p{k}@example.org", topics=["travel", "sports"], timestamp=when - timedelta(hours=k))
            | {"consent_purposes": PROFILED}
            for k in range(4)
        ]
        assert ingest(at(runtime, when), batch).accepted == 4

    report = purge_at(runtime, EVENTS_GONE_FROM + 250 * DAY)

    assert report.removed[Category.EVENTS]["events"] > 0
    assert report.profile_rows_updated > 0
    purged = stored_state(runtime)
    rebuilt_at = at(runtime, EVENTS_GONE_FROM + 250 * DAY)
    assert run_build(rebuilt_at).status is BuildStatus.SUCCEEDED
    assert_same_state(purged, stored_state(runtime))


def test_a_purged_event_sent_again_is_still_a_duplicate(runtime: Runtime) -> None:
    person(runtime)
    purge_at(runtime, EVENTS_GONE_FROM)
    resend = event(
        email="ana@example.org", event="purchase", amount=10.0, currency="EUR", topics=["travel"], message_id="ana-1"
    )

    result = ingest(at(runtime, EVENTS_GONE_FROM), [resend | {"consent_purposes": PROFILED}])

    assert (result.accepted, result.duplicates) == (0, 1)
    assert count(runtime, MessageReceiptRow) == 1
    assert count(runtime, ProfileDailyRow, ProfileDailyRow.type == "purchase") == 0


def test_a_quiet_anonymous_subject_is_erased_whole_and_the_others_stay(runtime: Runtime) -> None:
    quiet = anonymous(runtime, "dev-quiet", NOW)
    assert ingest(at(runtime, NOW), [event(email="bob@example.org")]).accepted == 1  # identified, as quiet
    recent = anonymous(runtime, "dev-recent", NOW + 10 * DAY)
    bob = subject_of(runtime, IdentifierKind.EMAIL, "bob@example.org")
    assert rows_naming(runtime, quiet)

    kept = purge_at(runtime, NOW + 90 * DAY)
    assert kept.subjects_erased == 0
    erased = purge_at(runtime, NOW + 90 * DAY + timedelta(microseconds=1))

    assert erased.subjects_erased == 1
    assert erased.removed[Category.ANONYMOUS_SUBJECTS]["subjects"] == 1
    assert rows_naming(runtime, quiet) == {}
    assert {SubjectRow.__tablename__, EventRow.__tablename__} <= set(rows_naming(runtime, recent))
    assert bob is not None
    assert "identities" in rows_naming(runtime, bob)
    assert count(runtime, ErasureReceiptRow, ErasureReceiptRow.reason == "retention") == 1
    assert count(runtime, MessageReceiptRow) == 1, "the erased subject's event stays a duplicate"


def test_closed_requests_and_receipts_go_after_their_time_and_open_ones_never(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for closed in (NOW, None):
            unit.session.add(request_row(received=NOW - 10 * DAY, closed=closed))
        unit.session.add(receipt_row(NOW))

    kept = purge_at(runtime, NOW + 1096 * DAY)
    gone = purge_at(runtime, NOW + 1096 * DAY + timedelta(microseconds=1))

    assert kept.total(Category.CLOSED_REQUESTS) == kept.total(Category.ERASURE_RECEIPTS) == 0
    assert gone.total(Category.CLOSED_REQUESTS) == gone.total(Category.ERASURE_RECEIPTS) == 1
    assert count(runtime, SubjectRequestRow) == 1
    assert count(runtime, SubjectRequestRow, SubjectRequestRow.closed_at.is_(None)) == 1
    assert count(runtime, ErasureReceiptRow) == 0


def test_a_dry_run_changes_nothing_and_counts_what_the_purge_then_deletes(runtime: Runtime) -> None:
    expired_everywhere(runtime)
    before = every_table(runtime)
    later = NOW + 1100 * DAY

    dry = purge_at(runtime, later, dry_run=True)

    assert every_table(runtime) == before
    real = purge_at(runtime, later)
    assert dry.dry_run
    assert not real.dry_run
    assert dry.removed == real.removed
    assert (dry.subjects_erased, dry.profile_rows_updated) == (real.subjects_erased, real.profile_rows_updated)
    assert all(real.total(category) > 0 for category in Category), real.removed


def test_a_second_purge_finds_nothing_and_changes_nothing(runtime: Runtime) -> None:
    expired_everywhere(runtime)
    later = NOW + 1100 * DAY
    assert purge_at(runtime, later)
    after = every_table(runtime)

    again = purge_at(runtime, later)

    assert not again
    assert every_table(runtime) == after


def test_each_purge_that_removes_something_is_audited_with_its_counts(runtime: Runtime) -> None:
    expired_everywhere(runtime)
    report = purge_at(runtime, NOW + 1100 * DAY)
    with runtime.sessions() as session:
        entries = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == AUDIT_ACTION)).all()
    assert len(entries) == 1
    details = entries[0].details
    assert details["events.events"] == report.removed[Category.EVENTS]["events"]
    assert details["subjects_erased"] == report.subjects_erased == 1
    assert entries[0].target is None


def test_a_run_in_partitions_removes_what_one_transaction_does(runtime: Runtime) -> None:
    """The CLI's and the schedule's path: one unit of work per partition, the same result."""
    expired_everywhere(runtime)
    later = NOW + 1100 * DAY
    dry = purge_at(runtime, later, dry_run=True)
    # One partition per stored event (below the setting's floor, which is for real stores).
    small = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"build_events_per_partition": 1}))
    partitions: list[int] = []

    report = run_purge(at(small, later), progress=lambda p: partitions.append(p.partitions))

    assert len(partitions) == count(runtime, EventRow) + dry.total(Category.EVENTS) > 1
    assert report.removed == dry.removed
    assert report.subjects_erased == dry.subjects_erased
    assert not run_purge(at(small, later))


def test_settings_refuse_a_retention_out_of_range() -> None:
    with pytest.raises(SettingsError, match="AUDIENCE_RETENTION_EVENTS_DAYS"):
        load_settings(retention_events_days=0)
    with pytest.raises(SettingsError, match="AUDIENCE_RETENTION_INTERVAL_SECONDS"):
        load_settings(retention_interval_seconds=-1)


def test_a_scheduled_run_against_a_database_away_logs_and_returns(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's thread outlives the failure: the next interval tries again."""
    engine = build_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    away = dataclasses.replace(runtime, engine=engine, sessions=session_factory(engine))
    try:
        assert ScheduledPurge(away, interval_s=3600).run_once() is None
    finally:
        engine.dispose()
    failed = [r for r in caplog.records if r.getMessage() == "retention purge failed"]
    assert failed
    assert failed[0].__dict__["error_type"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_audience_purge_counts_then_deletes(
    runtime: Runtime, database_url: str, keyring: Keyring, tmp_path: Path
) -> None:
    """Run as an operator runs it, under the real clock: data written in 2024 is long expired."""
    expired_everywhere(runtime)
    today = event_of_today(runtime)
    env = {
        "AUDIENCE_DATABASE_URL": database_url,
        "AUDIENCE_KEYRING": dumps_keyring(keyring),
        "AUDIENCE_DATA_DIR": str(tmp_path / "data"),
        "AUDIENCE_RETENTION_RECEIPT_DAYS": "365",  # the request closed in 2024 is past it, not past 1096
    }
    events = count(runtime, EventRow)

    dry = run_audience("purge", "--dry-run", directory=tmp_path, env=env)

    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    assert "would delete" in dry.stdout
    assert count(runtime, EventRow) == events
    done = run_audience("purge", directory=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    kept = count(runtime, EventRow)
    assert count(runtime, EventRow, EventRow.occurred_at.between(today - DAY, today)) == 1, "an event of today stays"
    assert kept <= 2, "and at most the one dated 2027-02-26, until the real clock's cutoff passes it"
    assert count(runtime, SubjectRequestRow, SubjectRequestRow.closed_at.is_not(None)) == 0
    for output in (dry.stdout, done.stdout):
        assert events_row(output) == str(events - kept)
    again = run_audience("purge", directory=tmp_path, env=env)
    assert again.returncode == 0
    assert events_row(again.stdout) == "0"
    assert count(runtime, EventRow) == kept


def events_row(output: str) -> str:
    """The total of the events category in the summary table."""
    row = next(line for line in output.splitlines() if " events " in line and "(all)" in line)
    return row.replace("│", " ").split()[-1].replace(",", "")


def test_the_server_purges_on_its_own(database_url: str, runtime: Runtime, keyring: Keyring, tmp_path: Path) -> None:
    """A live server with a short interval and expired data: the data goes, with a log line of counts."""
    expired_everywhere(runtime)
    today = event_of_today(runtime)
    with serving(
        directory=tmp_path / "server", database_url=database_url, keyring=keyring, retention_interval_seconds="1"
    ) as server:
        deadline = time.monotonic() + 60
        expired = EventRow.occurred_at < NOW + 40 * DAY
        while count(runtime, EventRow, expired) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(runtime, EventRow, expired) == 0
        assert count(runtime, EventRow, EventRow.occurred_at.between(today - DAY, today)) == 1, (
            "an event of today stays"
        )
        lines = server.log_lines_containing('"retention purge"', timeout_s=30)
    logged = json.loads(lines[0])
    assert logged["outcome"] == "done"
    assert logged["counts"]["events"] > 0
    assert "example.org" not in server.log_text()


# --- set-up --------------------------------------------------------------------------------------


def expired_everywhere(runtime: Runtime) -> None:
    """Something expired in every category as of NOW + 1100 days, and things that are not."""
    person(runtime)
    anonymous(runtime, "dev-quiet", NOW)
    later = NOW + 1000 * DAY
    assert ingest(at(runtime, later), [event(email="ana@example.org", timestamp=later - timedelta(minutes=1))]).accepted
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.add(request_row(received=NOW - 10 * DAY, closed=NOW))
        unit.session.add(request_row(received=later, closed=None))
        unit.session.add(receipt_row(NOW))


def event_of_today(runtime: Runtime) -> datetime:
    """An event of a minute ago under the real clock, which no purge under that clock removes; returns now."""
    today = datetime.now(UTC)
    assert ingest(at(runtime, today), [event(email="ben@example.org", timestamp=today - timedelta(minutes=1))]).accepted
    return today


def request_row(*, received: datetime, closed: datetime | None) -> SubjectRequestRow:
    return SubjectRequestRow(
        kind="access",
        status="completed" if closed else "received",
        identifier_kind="email",
        identifier_key_version=1,
        identifier_pseudonym=b"\x01" * 32,
        received_at=received,
        due_at=received + 30 * DAY,
        closed_at=closed,
    )


def receipt_row(completed: datetime) -> ErasureReceiptRow:
    return ErasureReceiptRow(
        request_id=None,
        reason="request",
        started_at=completed,
        completed_at=completed,
        subjects=1,
        keys_destroyed=1,
        identifiers_suppressed=1,
        rows_removed={"events": 3},
    )
