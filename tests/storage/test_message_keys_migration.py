"""Migration 0007 as an operator meets it: a database whose events hold message ids in clear
(emails and phone numbers among them, as careless senders write them) is upgraded by `audience
migrate`. Afterwards no id is left in clear in any byte the database keeps, every event is still
there under its keyed hash, and a resend is still a duplicate. Without the keyring the command
refuses in one line and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from server.runtime import Runtime
from server.storage import migrate
from tests.ingest.batches import event, fixed_clock, ingest
from tests.privacy.test_at_rest import found_in, pg_dump_bytes, sqlite_bytes
from tests.support.cli import run_audience

CLEAR_IDS = ["ana.lima@example.org", "+4930123456789", "order-4411-bart.okonkwo@mail.example.com"]
FILLER = [f"m-{n:04d}" for n in range(120)]


def database_bytes(runtime: Runtime, backend: str) -> bytes:
    return sqlite_bytes(runtime) if backend == "sqlite" else pg_dump_bytes(runtime)


@pytest.fixture
def with_clear_ids(runtime: Runtime) -> Runtime:
    """The database at 0006 holding events keyed by their message ids in clear, from two sources."""
    migrate.downgrade(runtime.engine, "0006")
    rows = [(source, message_id) for message_id in CLEAR_IDS + FILLER for source in ("web", "app")]
    with runtime.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events (source, event_id, subject_id, origin_subject_id, type, channel, occurred_at,"
                " received_at) VALUES (:source, :id, 1, 1, 'page_view', 'web', '2024-06-01 11:00:00',"
                " '2024-06-01 12:00:00')"
            ),
            [{"source": source, "id": message_id} for source, message_id in rows],
        )
    return runtime


def audience_migrate(runtime: Runtime, tmp_path: Path, *, with_keyring: bool) -> tuple[int, str]:
    env = {"AUDIENCE_DATA_DIR": str(tmp_path), "AUDIENCE_DATABASE_URL": runtime.settings.effective_database_url}
    if with_keyring:
        secret = runtime.settings.keyring
        assert secret is not None
        env["AUDIENCE_KEYRING"] = secret.get_secret_value()
    result = run_audience("migrate", directory=tmp_path, env=env)
    return result.returncode, result.stdout + result.stderr


def stored_keys(runtime: Runtime) -> list[tuple[str, bytes]]:
    with runtime.engine.connect() as connection:
        return sorted((s, bytes(k)) for s, k in connection.execute(text("SELECT source, message_key FROM events")))


def test_audience_migrate_keeps_every_event_and_no_message_id_in_clear(
    with_clear_ids: Runtime, backend: str, tmp_path: Path
) -> None:
    runtime = with_clear_ids
    assert found_in(database_bytes(runtime, backend), set(CLEAR_IDS)) == set(CLEAR_IDS), "the scan sees them before"

    code, output = audience_migrate(runtime, tmp_path, with_keyring=True)

    assert code == 0, output
    assert migrate.is_at_head(runtime.engine)
    assert found_in(database_bytes(runtime, backend), set(CLEAR_IDS)) == set()
    keys = runtime.kit.message_keys.digest_many(CLEAR_IDS + FILLER)
    assert stored_keys(runtime) == sorted((source, key) for key in keys for source in ("web", "app"))
    again = ingest(fixed_clock(runtime), [event(message_id=m, anonymous_id="dev-1") for m in CLEAR_IDS], source="web")
    assert (again.accepted, again.duplicates) == (0, len(CLEAR_IDS)), "a migrated event sent again is a duplicate"


def test_audience_migrate_without_the_keyring_refuses_and_changes_nothing(
    with_clear_ids: Runtime, tmp_path: Path
) -> None:
    runtime = with_clear_ids

    code, output = audience_migrate(runtime, tmp_path, with_keyring=False)

    assert code != 0
    assert "keyring" in output
    assert "Traceback" not in output
    assert migrate.current_revision(runtime.engine) == "0006"
    with runtime.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM events")).scalar_one() == 2 * len(CLEAR_IDS + FILLER)
