"""KEK rotation as an operator runs it: `audience keys rotate-kek | retire-kek | status`.

The promise: every data key moves to the new KEK, no field ciphertext changes, PII stays
readable, an interrupted rotation finishes on the next run, and a KEK version is removed only
once nothing needs it — after which the pruned keyring still reads everything.
"""

from __future__ import annotations

import base64
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from privacy.field_crypto import KeyWrapper
from privacy.keyring import KeyPurpose, Keyring, dumps_keyring, generate_keyring, load_keyring_file, write_keyring_file
from server.auth.principal import SYSTEM_ACTOR, Actor
from server.cli import key_rotation_commands
from server.cli.main import main
from server.keys.rotation import RewrapBatch, RewrapTotals, rewrap_batch, rewrap_outdated
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.tables import AuditEntryRow, SubjectKeyRow, SubjectPiiRow
from server.subjects.service import create_subject, read_pii, write_pii

SUBJECTS = 7


@dataclass
class Installation:
    settings: Settings
    keyring_path: Path
    pii: dict[int, dict[str, str]]

    def runtime(self, keyring: Keyring | None = None) -> Runtime:
        return build_runtime(self.settings, keyring=keyring or load_keyring_file(self.keyring_path))

    def keyring(self) -> Keyring:
        return load_keyring_file(self.keyring_path)

    def keys(self, keyring: Keyring | None = None) -> dict[int, tuple[int, bytes]]:
        runtime = self.runtime(keyring)
        try:
            with runtime.sessions() as session:
                rows = session.execute(
                    select(SubjectKeyRow.subject_id, SubjectKeyRow.kek_version, SubjectKeyRow.wrapped_dek)
                ).all()
        finally:
            runtime.dispose()
        return {row.subject_id: (row.kek_version, bytes(row.wrapped_dek)) for row in rows}

    def field_ciphertexts(self) -> dict[tuple[int, str], bytes]:
        runtime = self.runtime()
        try:
            with runtime.sessions() as session:
                rows = session.execute(
                    select(SubjectPiiRow.subject_id, SubjectPiiRow.field, SubjectPiiRow.ciphertext)
                ).all()
        finally:
            runtime.dispose()
        return {(row.subject_id, row.field): bytes(row.ciphertext) for row in rows}

    def read_all_pii(self, keyring: Keyring | None = None) -> dict[int, dict[str, str]]:
        runtime = self.runtime(keyring)
        try:
            with runtime.sessions() as session:
                return {subject_id: read_pii(session, subject_id, runtime.kit) for subject_id in self.pii}
        finally:
            runtime.dispose()

    def audit_details(self, action: str) -> list[dict[str, object]]:
        runtime = self.runtime()
        try:
            with runtime.sessions() as session:
                return list(
                    session.scalars(
                        select(AuditEntryRow.details).where(AuditEntryRow.action == action).order_by(AuditEntryRow.seq)
                    )
                )
        finally:
            runtime.dispose()


@pytest.fixture
def installation(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installation:
    for name in ("AUDIENCE_KEYRING", "AUDIENCE_CONFIG", "AUDIENCE_KEYRING_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIENCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AUDIENCE_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    keyring_path = tmp_path / "keyring.json"
    write_keyring_file(keyring_path, generate_keyring())
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    built = Installation(settings=settings, keyring_path=keyring_path, pii={})
    runtime = built.runtime()
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            for index in range(SUBJECTS):
                subject_id = create_subject(unit.session, identifiers=[], kit=unit.kit, now=unit.clock())
                fields = {
                    "name": f"Person Number{index}",
                    "email": f"person{index}@example.org",
                    "birth_date": f"19{70 + index}-0{1 + index}-1{index}",
                }
                write_pii(unit.session, subject_id, fields, unit.kit, unit.clock())
                built.pii[subject_id] = fields
    finally:
        runtime.dispose()
    return built


def audience(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rotation_rewraps_every_data_key_and_leaves_field_ciphertexts_alone(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_before, fields_before = installation.keys(), installation.field_ciphertexts()
    assert {version for version, _ in keys_before.values()} == {1}

    code, out, err = audience("keys", "rotate-kek", capsys=capsys)

    assert code == 0, err
    assert f"re-wrapped {SUBJECTS} data keys under KEK version 2" in out
    keyring = installation.keyring()
    assert (keyring.versions(KeyPurpose.KEK), keyring.current[KeyPurpose.KEK]) == ([1, 2], 2)
    assert stat.S_IMODE(installation.keyring_path.stat().st_mode) == 0o600
    keys_after = installation.keys()
    assert keys_after.keys() == keys_before.keys()
    for subject_id, (version, blob) in keys_after.items():
        assert version == 2
        assert blob != keys_before[subject_id][1]
    assert installation.field_ciphertexts() == fields_before, "rotation must never touch field data"
    assert installation.read_all_pii() == installation.pii
    [details] = installation.audit_details("kek.rotate")
    assert details == {
        "added_version": 2,
        "current_version": 2,
        "rewrapped": SUBJECTS,
        "unreadable": 0,
        "completed": True,
    }


def test_the_old_kek_is_retired_and_the_pruned_keyring_still_reads_everything(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audience("keys", "rotate-kek", capsys=capsys)[0] == 0

    code, _, err = audience("keys", "retire-kek", "1", capsys=capsys)

    assert code == 0, err
    pruned = installation.keyring()
    assert pruned.versions(KeyPurpose.KEK) == [2]
    assert stat.S_IMODE(installation.keyring_path.stat().st_mode) == 0o600
    assert installation.read_all_pii(pruned) == installation.pii
    assert installation.audit_details("kek.retire") == [{"version": 1}]
    current = audience("keys", "retire-kek", "2", capsys=capsys)
    assert current[0] == 2
    assert current[2].strip().splitlines() == [
        "error: KEK version 2 is the current one; run `audience keys rotate-kek` first"
    ]


def test_an_interrupted_rotation_blocks_retirement_and_finishes_on_the_next_run(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """Interrupted after one committed batch of 3: the keyring already has version 2."""
    rotated = installation.keyring().with_new_version(KeyPurpose.KEK)
    write_keyring_file(installation.keyring_path, rotated, replace=True)
    runtime = installation.runtime(rotated)
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            batch = rewrap_batch(unit.session, KeyWrapper(rotated), after_subject_id=0, limit=3)
    finally:
        runtime.dispose()
    assert (batch.scanned, batch.rewrapped) == (3, 3)
    assert sorted(version for version, _ in installation.keys().values()) == [1] * (SUBJECTS - 3) + [2] * 3
    assert installation.read_all_pii() == installation.pii, "a half-rotated store stays readable"

    refused = audience("keys", "retire-kek", "1", capsys=capsys)
    assert refused[0] == 2
    assert refused[2].strip().splitlines() == [
        f"error: {SUBJECTS - 3} data keys are still wrapped under KEK version 1; run `audience keys rotate-kek` "
        "to re-wrap them first"
    ]
    assert installation.keyring().versions(KeyPurpose.KEK) == [1, 2]

    code, out, err = audience("keys", "rotate-kek", "--batch-size", "2", capsys=capsys)

    assert code == 0, err
    assert f"resuming: {SUBJECTS - 3} data keys" in out
    assert installation.keyring().versions(KeyPurpose.KEK) == [1, 2], "resuming adds no version"
    assert {version for version, _ in installation.keys().values()} == {2}
    assert installation.audit_details("kek.rotate")[-1]["rewrapped"] == SUBJECTS - 3
    assert audience("keys", "retire-kek", "1", capsys=capsys)[0] == 0
    assert installation.read_all_pii(installation.keyring()) == installation.pii


def test_a_data_key_that_does_not_unwrap_is_kept_and_its_version_cannot_be_retired(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = min(installation.pii)
    runtime = installation.runtime()
    try:
        with runtime.sessions.begin() as session:
            blob = session.scalar(select(SubjectKeyRow.wrapped_dek).where(SubjectKeyRow.subject_id == victim))
            assert blob is not None
            forged = bytes(blob[:-1]) + bytes([blob[-1] ^ 1])
            session.execute(update(SubjectKeyRow).where(SubjectKeyRow.subject_id == victim).values(wrapped_dek=forged))
    finally:
        runtime.dispose()

    code, out, err = audience("keys", "rotate-kek", capsys=capsys)

    assert code == 1, err
    assert "1 data keys did not unwrap" in out
    keys = installation.keys()
    assert keys[victim] == (1, forged), "a forgery is never blessed with the new KEK"
    assert {keys[s][0] for s in keys if s != victim} == {2}
    assert installation.audit_details("kek.rotate")[-1]["unreadable"] == 1
    assert audience("keys", "retire-kek", "1", capsys=capsys)[0] == 2


def test_status_lists_versions_and_data_keys_per_kek_version(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    rotated = installation.keyring().with_new_version(KeyPurpose.KEK)
    write_keyring_file(installation.keyring_path, rotated, replace=True)

    code, out, _ = audience("keys", "status", capsys=capsys)

    assert code == 0
    assert f"keyring: file {installation.keyring_path}" in out
    lines = [" ".join(line.replace("│", " ").split()) for line in out.splitlines()]
    assert "kek 1, 2 2" in lines
    assert "identifier_hmac 1 1" in lines
    assert f"1 {SUBJECTS} in use: run `audience keys rotate-kek`" in lines
    assert "2 0 current" in lines
    for secret in rotated.keys[KeyPurpose.KEK].values():
        assert base64.b64encode(secret).decode() not in out


def test_a_keyring_from_the_environment_is_not_rotated_in_place(
    installation: Installation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = installation.keyring_path.read_text()
    monkeypatch.setenv("AUDIENCE_KEYRING", text)

    for command in (["rotate-kek"], ["retire-kek", "1"]):
        code, _, err = audience("keys", *command, capsys=capsys)
        assert code == 2
        [line] = err.strip().splitlines()
        assert "AUDIENCE_KEYRING" in line
        assert "AUDIENCE_KEYRING_PATH" in line
    assert installation.keyring_path.read_text() == text
    assert {version for version, _ in installation.keys().values()} == {1}


@pytest.mark.parametrize("command", [["rotate-kek"], ["retire-kek"], ["status"]], ids=" ".join)
def test_every_kek_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", *command, "--help"])
    assert exited.value.code == 0
    assert "usage: audience keys" in capsys.readouterr().out


def test_ctrl_c_during_rotation_keeps_committed_batches_and_is_audited(
    installation: Installation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_after_first_batch(runtime: Runtime, actor: Actor, **options: Any) -> RewrapTotals:
        def stop(batch: RewrapBatch) -> None:
            options["on_batch"](batch)
            raise KeyboardInterrupt

        return rewrap_outdated(runtime, actor, batch_size=options["batch_size"], on_batch=stop)

    monkeypatch.setattr(key_rotation_commands, "rewrap_outdated", interrupted_after_first_batch)
    assert audience("keys", "rotate-kek", "--batch-size", "2", capsys=capsys)[0] == 130
    assert sorted(version for version, _ in installation.keys().values()) == [1] * (SUBJECTS - 2) + [2] * 2
    assert installation.audit_details("kek.rotate") == [
        {"added_version": 2, "current_version": 2, "rewrapped": 2, "unreadable": 0, "completed": False}
    ]
    monkeypatch.setattr(key_rotation_commands, "rewrap_outdated", rewrap_outdated)

    assert audience("keys", "rotate-kek", capsys=capsys)[0] == 0
    assert {version for version, _ in installation.keys().values()} == {2}
    assert installation.keyring().versions(KeyPurpose.KEK) == [1, 2]
    assert installation.read_all_pii() == installation.pii


def test_a_rotated_keyring_in_the_environment_is_used_to_rewrap(
    installation: Installation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator rotated a copy of the keyring and updated the variable: re-wrapping needs no file."""
    rotated = installation.keyring().with_new_version(KeyPurpose.KEK)
    monkeypatch.setenv("AUDIENCE_KEYRING", dumps_keyring(rotated))
    installation.keyring_path.unlink()

    code, out, err = audience("keys", "rotate-kek", capsys=capsys)

    assert code == 0, err
    assert f"resuming: {SUBJECTS} data keys" in out
    assert "keyring: AUDIENCE_KEYRING" in audience("keys", "status", capsys=capsys)[1]
    assert audience("keys", "rotate-kek", "--force-new-version", capsys=capsys)[0] == 2
    assert {version for version, _ in installation.keys(rotated).values()} == {2}
    assert installation.read_all_pii(rotated) == installation.pii
