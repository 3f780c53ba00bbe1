"""Failures an operator meets, each ending in one line that says what to do: the real CLI as a child
process, a non-zero exit, no traceback, and no value from the data or the settings repeated."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privacy.keyring import dumps_keyring, generate_keyring
from tests.support.cli import run_audience

NOW = datetime.now(UTC)
HEADER = "message_id,event,channel,timestamp,anonymous_id,consent_purposes\n"


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def csv_events(path: Path, count: int, *, at: datetime = NOW - timedelta(hours=1), prefix: str = "m") -> Path:
    rows = (f"{prefix}-{i},page_view,web,{at.isoformat()},dev-{prefix}-{i % 97},analytics\n" for i in range(count))
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


@pytest.fixture
def initialized(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {"AUDIENCE_DATA_DIR": str(tmp_path / "data"), "AUDIENCE_DATABASE_URL": database_url}
    result = run_audience("init", directory=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return env


def test_an_import_that_accepts_nothing_fails_naming_the_main_refusal_and_its_setting(
    tmp_path: Path, initialized: dict[str, str]
) -> None:
    old = csv_events(tmp_path / "old.csv", 30, at=NOW - timedelta(days=500))

    result = run_audience("import", str(old), directory=tmp_path, env=initialized)

    assert result.returncode != 0
    line = one_line(result)
    assert "TOO_OLD" in line
    assert "AUDIENCE_RETENTION_DAYS" in line
    assert "30 of 30" in line
    assert "dev-m-" not in line


def test_a_rerun_that_only_finds_duplicates_still_succeeds(tmp_path: Path, initialized: dict[str, str]) -> None:
    """Rerunning a file after a crash is what the docs invite: nothing new is not a failure."""
    events = csv_events(tmp_path / "events.csv", 20)
    assert run_audience("import", str(events), directory=tmp_path, env=initialized).returncode == 0
    again = run_audience("import", str(events), directory=tmp_path, env=initialized)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUDIENCE_RETENTION_DAYS", "1000000"),
        ("AUDIENCE_INGEST_FUTURE_SKEW_SECONDS", "100000000000000"),
        ("AUDIENCE_MAX_EMAILS_PER_SUBJECT", "100000000000"),
        ("AUDIENCE_ANONYMITY_THRESHOLD", "100000000000"),
    ],
)
def test_an_out_of_range_setting_stops_the_command_naming_the_setting_and_its_range(
    tmp_path: Path, initialized: dict[str, str], name: str, value: str
) -> None:
    events = csv_events(tmp_path / "events.csv", 5)

    result = run_audience("import", str(events), directory=tmp_path, env={**initialized, name: value})

    assert result.returncode == 2
    line = one_line(result)
    assert name in line
    assert "less than or equal to" in line
    assert value not in line


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("room", [20_000, 2_000_000], ids=["inside-a-statement", "at-a-commit"])
def test_a_full_disk_during_an_import_is_one_line_and_what_was_committed_stays(tmp_path: Path, room: int) -> None:
    """The file size limit makes the kernel refuse writes past it, as a full disk does (SQLite only)."""
    env = {"AUDIENCE_DATA_DIR": str(tmp_path / "data")}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    events = csv_events(tmp_path / "events.csv", 40_000)
    database = tmp_path / "data" / "audience.db"

    result = run_audience(
        "import",
        str(events),
        "--chunk-size",
        "2000",
        directory=tmp_path,
        env=env,
        preexec_fn=_file_size_limit(database.stat().st_size + room),
    )

    assert result.returncode == 2
    line = one_line(result)
    assert "disk" in line
    assert "AUDIENCE_DATABASE_URL" not in line
    rerun = run_audience("import", str(events), "--chunk-size", "2000", directory=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` made unwritable for this user: mode 0555, or immutable when the tests run as root
    (root writes whatever the mode says; it gets EPERM instead of EACCES, as on a read-only mount)."""
    as_root = os.geteuid() == 0
    if as_root:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: no directory can be made read-only")
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    try:
        yield path
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def assert_names_the_data_directory(result: subprocess.CompletedProcess[str], data: Path) -> None:
    assert result.returncode == 2
    line = one_line(result)
    assert "AUDIENCE_DATA_DIR" in line
    assert "not writable" in line
    assert "AUDIENCE_DATABASE_URL" not in line
    assert str(data) not in line


@pytest.mark.parametrize("command", [["init"], ["serve"], ["keys", "list"]])
def test_a_read_only_data_directory_is_named_not_the_database_url(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {"AUDIENCE_DATA_DIR": str(data), "AUDIENCE_KEYRING": dumps_keyring(generate_keyring())}
    with read_only(data):
        assert_names_the_data_directory(run_audience(*command, directory=tmp_path, env=env), data)


def test_a_data_directory_that_turned_read_only_under_its_database_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"AUDIENCE_DATA_DIR": str(data), "AUDIENCE_KEYRING": dumps_keyring(generate_keyring())}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    events = csv_events(tmp_path / "events.csv", 5)
    with read_only(data):
        assert_names_the_data_directory(run_audience("import", str(events), directory=tmp_path, env=env), data)


def test_an_ndjson_line_longer_than_the_reader_takes_is_named_with_the_limit(
    tmp_path: Path, initialized: dict[str, str]
) -> None:
    record = {
        "messageId": "m-1",
        "type": "page_view",
        "channel": "web",
        "timestamp": (NOW - timedelta(hours=1)).isoformat(),
        "anonymousId": "dev-1",
    }
    huge = {**record, "messageId": "m-2", "properties": {"category": "ana.lima " * (3 << 20)}}
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in (record, huge, record)), encoding="utf-8")

    result = run_audience("import", str(path), directory=tmp_path, env=initialized)

    assert result.returncode == 2
    line = one_line(result)
    assert "line 2 " in line
    assert "8 MiB" in line
    assert "ana.lima" not in line
