"""`audience segments evaluate` as an operator runs it after a CLI import: real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from privacy.identifiers import IdentifierKind
from server.runtime import build_runtime
from server.segments.rules import EventWindow, LastDays
from server.settings import Settings
from tests.ingest.batches import event, ingest, subject_of
from tests.segments.segment_steps import add_segment, members, segment
from tests.support.cli import run_audience


def test_evaluate_drains_marks_and_evaluates_new_segments_then_all(tmp_path: Path, database_url: str) -> None:
    env = {"AUDIENCE_DATABASE_URL": database_url, "AUDIENCE_DATA_DIR": str(tmp_path / "data")}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    runtime = build_runtime(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        buyers = add_segment(runtime, "buyers", EventWindow("purchase", LastDays(30), at_least=1))
        recently = datetime.now(UTC) - timedelta(minutes=5)  # the CLI evaluates as of its own clock
        record = event(
            email="m@example.org", event="purchase", timestamp=recently, consent_purposes=["analytics", "profiling"]
        )
        ingest(runtime, [record])
        done = run_audience("segments", "evaluate", directory=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "1 segments evaluated" in done.stdout
        assert members(runtime, buyers) == {subject_of(runtime, IdentifierKind.EMAIL, "m@example.org")}
        again = run_audience("segments", "evaluate", "--all", directory=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert "(0 stays changed)" in again.stdout
        assert segment(runtime, buyers).status == "ready"
    finally:
        runtime.dispose()
