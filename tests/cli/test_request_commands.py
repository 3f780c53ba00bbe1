"""`audience requests` as the compliance team runs it: real processes, the identifier read from stdin."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent.service import subjects_allowed
from server.requests import execution
from server.requests.lifecycle import RequestKind
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.tables import SubjectRequestRow
from server.subjects.service import read_pii
from tests.ingest.batches import event, fixed_clock, ingest, subject_of
from tests.support.cli import run_audience

EMAIL = "cli.requester@example.org"


@pytest.fixture
def operator(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    env = {"AUDIENCE_DATABASE_URL": database_url, "AUDIENCE_DATA_DIR": str(tmp_path / "data")}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    return tmp_path, env


def _runtime(directory: Path, env: dict[str, str]) -> Runtime:
    return build_runtime(Settings(data_dir=directory / "data", database_url=env["AUDIENCE_DATABASE_URL"]))


def _audience(
    *args: str, directory: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_audience(*args, directory=directory, env=env)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")} | {"COLUMNS": "200"} | env
    return subprocess.run(
        [sys.executable, "-m", "server.cli.main", *args],
        cwd=directory,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _file(kind: str, directory: Path, env: dict[str, str]) -> int:
    filed = _audience(
        "requests", "file", "--kind", kind, "--email", "-", directory=directory, env=env, stdin=EMAIL + "\n"
    )
    assert filed.returncode == 0, filed.stderr
    assert EMAIL not in filed.stdout + filed.stderr
    return int(filed.stdout.split()[1])


def _verify(request_id: int, directory: Path, env: dict[str, str]) -> None:
    verified = _audience(
        "requests", "verify", str(request_id), "--method", "email-challenge", "--reference", "ticket:1",
        directory=directory, env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_erasure_by_cli_from_filing_to_receipt(operator: tuple[Path, dict[str, str]]) -> None:
    directory, env = operator
    runtime = fixed_clock(_runtime(directory, env))
    ingest(runtime, [event(email=EMAIL), event(email=EMAIL)])
    runtime.dispose()

    request_id = _file("erasure", directory, env)
    refused = _audience("requests", "execute", str(request_id), directory=directory, env=env)
    assert refused.returncode == 2
    assert "verify the request first" in refused.stderr
    _verify(request_id, directory, env)
    done = _audience("requests", "execute", str(request_id), directory=directory, env=env)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    shown = _audience("requests", "show", str(request_id), directory=directory, env=env)
    assert '"events":2' in shown.stdout, shown.stdout
    listed = _audience("requests", "list", "--all", directory=directory, env=env)
    assert f"{request_id}" in listed.stdout
    assert "erasure" in listed.stdout

    runtime = _runtime(directory, env)
    try:
        assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is None
    finally:
        runtime.dispose()


def test_export_writes_a_private_file_and_never_overwrites(operator: tuple[Path, dict[str, str]]) -> None:
    directory, env = operator
    runtime = fixed_clock(_runtime(directory, env))
    ingest(runtime, [event(email=EMAIL)])
    runtime.dispose()
    request_id = _file("access", directory, env)
    _verify(request_id, directory, env)
    out = directory / "export.json"
    written = _audience("requests", "export", str(request_id), "--out", str(out), directory=directory, env=env)
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert document["version"] == 1
    assert document["counts"]["events"] == 1
    again = _audience("requests", "export", str(request_id), "--out", str(out), directory=directory, env=env)
    assert again.returncode == 2
    assert "exists" in again.stderr
    assert json.loads(out.read_text()) == document


def test_an_erasure_interrupted_after_it_started_is_finished_by_resume(operator: tuple[Path, dict[str, str]]) -> None:
    """The first transaction committed (``executing``), the process died before the second."""
    directory, env = operator
    runtime = fixed_clock(_runtime(directory, env))
    ingest(runtime, [event(email=EMAIL)])
    runtime.dispose()
    request_id = _file("erasure", directory, env)
    _verify(request_id, directory, env)
    runtime = _runtime(directory, env)
    try:
        execution._begin(runtime, SYSTEM_ACTOR, request_id, frozenset({RequestKind.ERASURE}))
        assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is not None
    finally:
        runtime.dispose()

    resumed = _audience("requests", "resume", directory=directory, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 interrupted request(s) finished" in resumed.stdout
    runtime = _runtime(directory, env)
    try:
        assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is None
        with runtime.sessions() as session:
            statuses = session.scalars(select(SubjectRequestRow.status)).all()
            assert statuses == ["completed"]
            assert session.scalar(select(func.count()).select_from(SubjectRequestRow)) == 1
    finally:
        runtime.dispose()
    nothing = _audience("requests", "resume", directory=directory, env=env)
    assert "0 interrupted request(s) finished" in nothing.stdout


def test_unknown_requests_and_bad_input_are_one_line(operator: tuple[Path, dict[str, str]]) -> None:
    directory, env = operator
    unknown = _audience("requests", "execute", "999", directory=directory, env=env)
    assert unknown.returncode == 2
    assert "no request has this id" in unknown.stderr
    bad = _audience(
        "requests", "file", "--kind", "access", "--email", "-", directory=directory, env=env, stdin="nope\n"
    )
    assert bad.returncode == 2
    assert "nope" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_restriction_objection_and_rectification_by_cli(operator: tuple[Path, dict[str, str]]) -> None:
    directory, env = operator
    runtime = fixed_clock(_runtime(directory, env))
    ingest(runtime, [event(email=EMAIL, consent_purposes=["analytics", "advertising"])])
    runtime.dispose()

    restriction = _file("restriction", directory, env)
    _verify(restriction, directory, env)
    restricted = _audience("requests", "execute", str(restriction), directory=directory, env=env)
    assert "restricted 1" in restricted.stdout, restricted.stdout + restricted.stderr
    lifted = _audience("requests", "lift", str(restriction), directory=directory, env=env)
    assert "lifted 1" in lifted.stdout, lifted.stdout + lifted.stderr

    objection = _file("objection", directory, env)
    _verify(objection, directory, env)
    objected = _audience("requests", "execute", str(objection), directory=directory, env=env)
    assert "recorded 1" in objected.stdout, objected.stdout + objected.stderr

    rectification = _file("rectification", directory, env)
    _verify(rectification, directory, env)
    unknown = _audience(
        "requests", "rectify", str(rectification), "--set", "shoe_size=44", directory=directory, env=env
    )
    assert unknown.returncode == 2
    assert "no declared attribute" in unknown.stderr
    assert "shoe_size" not in unknown.stderr
    rectified = _audience(
        "requests", "rectify", str(rectification), "--set", "first_name=-", "--unset", "phone",
        directory=directory, env=env, stdin="Analia\n",
    )  # fmt: skip
    assert rectified.returncode == 0, rectified.stderr
    assert "first_name: absent -> present" in rectified.stdout
    assert "Analia" not in rectified.stdout + rectified.stderr

    runtime = _runtime(directory, env)
    try:
        subject = subject_of(runtime, IdentifierKind.EMAIL, EMAIL)
        assert subject is not None
        with runtime.sessions() as session:
            assert read_pii(session, subject, runtime.kit)["first_name"] == "Analia"
            allowed = subjects_allowed(session, [subject], Purpose.ADVERTISING)
        assert allowed == set()
    finally:
        runtime.dispose()
