"""The `audience` command as an operator uses it: real processes, one clear line on failure."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update

from server.runtime import build_runtime
from server.settings import Settings
from server.storage.tables import AuditEntryRow
from tests.support.cli import run_audience

COMMANDS = [
    [],
    ["init"],
    ["migrate"],
    ["serve"],
    ["demo"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["keys", "rotate-kek"],
    ["keys", "retire-kek"],
    ["keys", "status"],
    ["partners"],
    ["partners", "create"],
    ["partners", "list"],
    ["audit"],
    ["audit", "verify"],
    ["audit", "search"],
    ["import"],
    ["identity"],
    ["identity", "merges"],
    ["identity", "split"],
    ["demo", "generate"],
    ["build"],
    ["requests"],
    *(
        ["requests", action]
        for action in ("file", "verify", "reject", "execute", "export", "rectify", "lift", "list", "show", "resume")
    ),
]


def audience(*args: str, directory: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_audience(*args, directory=directory, env={"AUDIENCE_DATA_DIR": str(directory / "data"), **(env or {})})


@pytest.fixture
def initialized(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    env = {"AUDIENCE_DATABASE_URL": database_url}
    result = audience("init", directory=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return tmp_path, env


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "audience")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """In-process: argparse prints the help and exits 0 (the process-level path is covered below)."""
    from server.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: audience" in capsys.readouterr().out


def test_init_creates_a_private_keyring_and_prints_an_admin_key_once(initialized: tuple[Path, dict[str, str]]) -> None:
    directory, env = initialized
    keyring = directory / "data" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    again = audience("init", directory=directory, env=env)
    assert again.returncode == 0
    assert "aud_" not in again.stdout, "a second init must not mint another admin key"


def test_keys_and_partners_round_trip(initialized: tuple[Path, dict[str, str]]) -> None:
    directory, env = initialized
    created = audience(
        "partners",
        "create",
        "acme-media",
        "--purpose",
        "analytics",
        "--purpose",
        "advertising",
        directory=directory,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    key = audience(
        "keys",
        "create",
        "--role",
        "partner",
        "--partner",
        "acme-media",
        "--label",
        "acme",
        directory=directory,
        env=env,
    )
    assert key.returncode == 0, key.stderr
    token = next(line for line in key.stdout.splitlines() if line.startswith("aud_"))
    key_id = token.split("_", 1)[1].split(".", 1)[0]
    listing = audience("keys", "list", directory=directory, env=env).stdout
    assert key_id in listing
    assert token.split(".", 1)[1] not in listing, "secrets are never listed"
    assert audience("keys", "revoke", key_id, directory=directory, env=env).returncode == 0
    again = audience("keys", "revoke", key_id, directory=directory, env=env)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: no live key has this id"


def test_partner_key_needs_an_existing_partner(initialized: tuple[Path, dict[str, str]]) -> None:
    directory, env = initialized
    result = audience(
        "keys", "create", "--role", "partner", "--partner", "nobody", "--label", "x", directory=directory, env=env
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_audit_verify_reports_the_first_tampered_entry(initialized: tuple[Path, dict[str, str]]) -> None:
    directory, env = initialized
    for name in ("one", "two", "three"):
        audience("partners", "create", f"p-{name}", "--purpose", "analytics", directory=directory, env=env)
    assert audience("audit", "verify", directory=directory, env=env).returncode == 0
    settings = Settings(data_dir=directory / "data", database_url=env["AUDIENCE_DATABASE_URL"])
    runtime = build_runtime(settings)
    with runtime.sessions.begin() as session:
        session.execute(update(AuditEntryRow).where(AuditEntryRow.seq == 3).values(target="partner:999"))
    runtime.dispose()
    result = audience("audit", "verify", directory=directory, env=env)
    assert result.returncode == 1
    assert "BROKEN at entry 3" in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AUDIENCE_ANONYMITY_THRESHOLD": "5"}, "AUDIENCE_ANONYMITY_THRESHOLD"),
        ({"AUDIENCE_PORT": "eighty"}, "AUDIENCE_PORT"),
        ({"AUDIENCE_DATABASE_URL": "mysql://x"}, "AUDIENCE_DATABASE_URL"),
        ({"AUDIENCE_CONFIG": "/nonexistent/audience.toml"}, "AUDIENCE_CONFIG"),
        ({"AUDIENCE_KEYRING": "{not json"}, "AUDIENCE_KEYRING"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = audience("keys", "list", directory=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_keyring_and_wide_keyring_are_refused(initialized: tuple[Path, dict[str, str]]) -> None:
    directory, env = initialized
    keyring = directory / "data" / "keyring.json"
    keyring.chmod(0o644)
    wide = audience("keys", "list", directory=directory, env=env)
    assert wide.returncode == 2
    assert "chmod 600" in wide.stderr
    keyring.unlink()
    missing = audience("keys", "list", directory=directory, env=env)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_config_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "audience.toml"
    config.write_text('anonymity_threshold = 75\nlog_level = "warning"\n')
    from server.settings import load_settings

    previous = dict(os.environ)
    try:
        os.environ["AUDIENCE_CONFIG"] = str(config)
        os.environ["AUDIENCE_LOG_LEVEL"] = "error"
        loaded = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(previous)
    assert (loaded.anonymity_threshold, loaded.log_level) == (75, "error")
