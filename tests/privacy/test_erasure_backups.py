"""Crypto-shredding against a backup, probed as an attacker who holds a copy of the database taken
before the erasure and, later, the installation's current keyring.

The copy still holds the erased person's wrapped data key, and under the keyring of the day it
unwraps: erasure alone cannot reach a copy. The product's answer is the operator's routine (docs/
erasure.md): ``audience keys rotate-kek`` and ``audience keys retire-kek <old>``, at a cadence no
longer than backup retention. After them the current keyring no longer unwraps the copy's key for
the erased person (nor, by design, for anyone in that copy), while the live database still
decrypts everyone who was not erased.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from privacy.field_crypto import DecryptionFailed, WrappedKey
from privacy.keyring import KeyPurpose, Keyring, KeyringError, generate_keyring, load_keyring_file, write_keyring_file
from server.auth.principal import SYSTEM_ACTOR
from server.privacy_kit import build_kit
from server.runtime import build_runtime
from server.settings import Settings
from server.storage.engine import build_engine
from server.storage.tables import SubjectKeyRow
from server.subjects.service import create_subject, read_pii, write_pii
from tests.privacy.erasure_people import erase
from tests.support.cli import run_audience
from tests.support.databases import PostgresServer

PEOPLE = {
    "ana": {"name": "Anastasia Querétaro-Lindqvist", "email": "anastasia.q@example.org"},
    "ben": {"name": "Bartholomew Okonkwo", "email": "bart.okonkwo@mail.example.com"},
}


@dataclass
class Installation:
    settings: Settings
    keyring_path: Path
    subjects: dict[str, int]
    backup_url: str

    def keyring(self) -> Keyring:
        return load_keyring_file(self.keyring_path)

    def audience(self, *args: str) -> None:
        environment = {
            "AUDIENCE_DATA_DIR": str(self.settings.data_dir),
            "AUDIENCE_DATABASE_URL": self.settings.effective_database_url,
        }
        result = run_audience(*args, directory=self.settings.data_dir, env=environment)
        assert result.returncode == 0, result.stderr


def backup(request: pytest.FixtureRequest, database_url: str, directory: Path) -> Generator[str, None, None]:
    """A copy of the whole database as it is now: the file, or a PostgreSQL database cloned from it."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        copy = directory / "backup.db"
        shutil.copyfile(str(url.database), copy)
        yield f"sqlite:///{copy}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create(template=str(url.database))
    try:
        yield server.url(name)
    finally:
        server.drop(name)


@pytest.fixture
def installation(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Installation]:
    keyring_path = tmp_path / "keyring.json"
    write_keyring_file(keyring_path, generate_keyring())
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    runtime = build_runtime(settings, keyring=load_keyring_file(keyring_path))
    subjects: dict[str, int] = {}
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            for key, fields in PEOPLE.items():
                subjects[key] = create_subject(unit.session, identifiers=[], kit=unit.kit, now=unit.clock())
                write_pii(unit.session, subjects[key], fields, unit.kit, unit.clock())
        with runtime.engine.connect() as connection:
            if runtime.engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        runtime.dispose()
    copies = backup(request, database_url, tmp_path)
    yield Installation(settings, keyring_path, subjects, next(copies))
    copies.close()


def unwrap_from(url: str, subject_id: int, keyring: Keyring, settings: Settings) -> bytes:
    """What an attacker does with the copy: read the wrapped key, unwrap it with the keyring at hand."""
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(SubjectKeyRow.kek_version, SubjectKeyRow.wrapped_dek).where(
                    SubjectKeyRow.subject_id == subject_id
                )
            ).one()
    finally:
        engine.dispose()
    return build_kit(keyring, settings).key_wrapper.unwrap(
        WrappedKey(row.kek_version, bytes(row.wrapped_dek)), subject_id
    )


def test_a_copy_taken_before_the_erasure_no_longer_decrypts_after_rotating_and_retiring_the_kek(
    installation: Installation,
) -> None:
    ana, ben = installation.subjects["ana"], installation.subjects["ben"]
    runtime = build_runtime(installation.settings, keyring=installation.keyring())
    try:
        erase(runtime, [ana])
    finally:
        runtime.dispose()
    old = installation.keyring().current[KeyPurpose.KEK]
    assert unwrap_from(installation.backup_url, ana, installation.keyring(), installation.settings), (
        "the threat is real: before the rotation, the keyring of the day opens the copy"
    )

    installation.audience("keys", "rotate-kek")
    installation.audience("keys", "retire-kek", str(old))

    current = installation.keyring()
    assert old not in current.versions(KeyPurpose.KEK)
    with pytest.raises((KeyringError, DecryptionFailed)):
        unwrap_from(installation.backup_url, ana, current, installation.settings)
    runtime = build_runtime(installation.settings, keyring=current)
    try:
        with runtime.sessions() as session:
            assert read_pii(session, ben, runtime.kit) == PEOPLE["ben"], "the live database still reads everyone else"
            assert session.get(SubjectKeyRow, ana) is None
    finally:
        runtime.dispose()
