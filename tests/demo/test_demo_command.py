"""`audience demo` fills an empty database from memory: the fake people reach the disk only as hashes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import create_engine, text

from server.demo import generate_population
from server.demo.segments import DEMO_GRANTS
from server.taxonomy import load_taxonomy
from tests.support.cli import run_audience

PEOPLE = 300
SEED = 4242


def audience(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return run_audience(*args, directory=directory, timeout=300)


def test_demo_loads_generated_people_without_writing_them_in_clear(tmp_path: Path) -> None:
    result = audience("demo", "--no-serve", "--people", str(PEOPLE), "--seed", str(SEED), directory=tmp_path)

    assert result.returncode == 0, result.stderr
    data = tmp_path / ".audience" / "demo"
    engine = create_engine(f"sqlite:///{data / 'audience.db'}")
    with engine.connect() as connection:
        events = connection.execute(text("SELECT count(*) FROM events")).scalar_one()
        subjects = connection.execute(text("SELECT count(*) FROM subjects")).scalar_one()
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    assert events > PEOPLE
    assert subjects >= PEOPLE // 2
    for role in ("admin", "compliance", "analyst", "marketer", "partner-alpha"):
        assert any(line.split()[:1] == [role] and "aud_" in line for line in result.stdout.splitlines()), role
    [made] = [line for line in result.stdout.splitlines() if line.startswith("segments:")]
    assert "0 created" not in made, made
    assert f"{len(DEMO_GRANTS)} granted" in made, made

    # The same seed gives the same people whatever the end date, so the test knows every email.
    known = generate_population(people=PEOPLE, seed=SEED, end=datetime.now(UTC), taxonomy=load_taxonomy())
    emails = pl.concat([known.attributes["email"], known.events["email"]]).drop_nulls().unique().to_list()
    haystack = b"".join(path.read_bytes() for path in sorted(tmp_path.rglob("*")) if path.is_file()).lower()
    assert haystack, "the scan reads the demo files"
    assert [email for email in emails if email.lower().encode() in haystack] == []
    assert [path.name for path in data.iterdir()] != [], "the demo directory holds the database and keyring"
    expected = {"audience.db", "audience.db-wal", "audience.db-shm", "keyring.json"}
    assert {path.name for path in data.iterdir()} <= expected, "no generated file in the demo directory"


def test_demo_again_keeps_its_segments(tmp_path: Path) -> None:
    first = audience("demo", "--no-serve", "--people", "60", "--seed", str(SEED), directory=tmp_path)
    assert first.returncode == 0, first.stderr

    again = audience("demo", "--no-serve", "--people", "60", "--seed", str(SEED), directory=tmp_path)

    assert again.returncode == 0, again.stderr
    assert "has events already" in again.stdout
    [made] = [line for line in again.stdout.splitlines() if line.startswith("segments:")]
    assert made.startswith("segments: 0 created"), made
    assert ", 0 granted" in made, made


def test_demo_generate_writes_files_and_says_they_hold_fictitious_personal_data(tmp_path: Path) -> None:
    result = audience(
        "demo", "generate", "--out", "files", "--people", "20", "--formats", "csv,ndjson", directory=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "fictitious personal data" in result.stdout
    assert (tmp_path / "files" / "events.csv").is_file()
    assert (tmp_path / "files" / "events.ndjson").is_file()
    assert not (tmp_path / "files" / "events.parquet").exists()
