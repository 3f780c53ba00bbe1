"""Another local user, probed as such: every file and directory the commands create for the data
is its owner's alone (0600 / 0700), like the keyring, whatever the umask lets through."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privacy.keyring import dumps_keyring, generate_keyring
from tests.support.cli import run_audience

PRIVATE_FILE, PRIVATE_DIRECTORY = 0o600, 0o700


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022) would leave new files readable by everyone: the commands must not rely on it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of ``root`` and of everything under it, by path relative to its parent."""
    return {str(path.relative_to(root.parent)): stat.S_IMODE(path.stat().st_mode) for path in [root, *root.rglob("*")]}


def assert_private(root: Path) -> None:
    found = modes(root)
    expected = {name: PRIVATE_DIRECTORY if (root.parent / name).is_dir() else PRIVATE_FILE for name in found}
    assert {name: f"{mode:04o}" for name, mode in found.items()} == {
        name: f"{mode:04o}" for name, mode in expected.items()
    }


def test_init_creates_a_private_data_directory_and_database(tmp_path: Path) -> None:
    data = tmp_path / "var" / "audience"
    result = run_audience("init", directory=tmp_path, env={"AUDIENCE_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert (data / "audience.db").is_file()
    assert_private(tmp_path / "var")


def test_an_import_leaves_the_database_and_its_write_ahead_log_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"AUDIENCE_DATA_DIR": str(data)}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    events = tmp_path / "events.csv"
    events.write_text(
        "message_id,event,channel,timestamp,anonymous_id,consent_purposes\n"
        f"m-1,page_view,web,{(datetime.now(UTC) - timedelta(hours=1)).isoformat()},dev-1,analytics\n",
        encoding="utf-8",
    )
    result = run_audience("import", str(events), directory=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert_private(data)


def test_serve_on_a_new_directory_creates_it_private(tmp_path: Path) -> None:
    """It stops at once (the new database is not migrated), but what it created must already be private."""
    data = tmp_path / "fresh" / "data"
    env = {"AUDIENCE_DATA_DIR": str(data), "AUDIENCE_KEYRING": dumps_keyring(generate_keyring())}
    result = run_audience("serve", directory=tmp_path, env=env)
    assert result.returncode == 2
    assert (data / "audience.db").is_file()
    assert_private(tmp_path / "fresh")


def test_demo_creates_its_directories_and_database_private(tmp_path: Path) -> None:
    result = run_audience("demo", "--no-serve", "--people", "30", directory=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".audience" / "demo" / "audience.db").is_file()
    assert_private(tmp_path / ".audience")
