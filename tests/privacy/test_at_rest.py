"""At rest, probed as an attacker holding a copy of the database (and maybe write access), not the keyring.

Known people are stored through the services; then the SQLite files and a `pg_dump` are scanned
for their identifiers and PII in every spelling we can think of, and ciphertexts and wrapped
keys are moved around or altered in the database to show they refuse to decrypt.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from privacy.consent import ConsentKey, ConsentPurpose, LegalBasis
from privacy.field_crypto import DecryptionFailed
from privacy.identifiers import IdentifierKind, normalize
from privacy.keyring import generate_keyring, write_keyring_file
from server.auth.principal import SYSTEM_ACTOR
from server.cli.main import main
from server.consent import service as consent
from server.runtime import Runtime
from server.storage.tables import SubjectKeyRow, SubjectPiiRow
from server.subjects.service import create_subject, read_pii, write_pii
from tests.support.databases import skip_or_fail

CONSENT_SOURCE = "cmp-at-rest-probe"


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str
    birth_date: str
    street_address: str

    def needles(self) -> set[str]:
        """Every spelling an attacker would grep for."""
        email = normalize(IdentifierKind.EMAIL, self.email).value
        phone = normalize(IdentifierKind.PHONE, self.phone).value
        name_parts = {part for part in self.name.replace("-", " ").split() if len(part) >= 5}
        return {
            self.email,
            email,
            email.split("@")[0],
            self.phone,
            phone,
            phone.lstrip("+"),
            re.sub(r"\D", "", self.phone),
            self.name,
            *name_parts,
            self.birth_date,
            self.street_address,
            self.street_address.split(",")[0],
        }


PEOPLE = [
    Person(
        "Anastasia Querétaro-Lindqvist",
        " Anastasia.Q@Example.ORG ",
        "+49 30 123456",
        "1984-03-12",
        "Kastanienallee 17, 10435 Berlin",
    ),
    Person(
        "Bartholomew Okonkwo",
        "bart.okonkwo@mail.example.com",
        "+33 1 23 45 67 89",
        "1971-11-30",
        "27 rue des Lombards, 75004 Paris",
    ),
    Person(
        "Zoë Ørsted", "ZOE.ORSTED@example.net", "+44 121 234 5678", "2001-07-04", "4 Brindleyplace, Birmingham B1 2JB"
    ),
]


@dataclass(frozen=True)
class Stored:
    runtime: Runtime
    subjects: list[int]
    pseudonyms: list[bytes]


@pytest.fixture
def stored(runtime: Runtime) -> Stored:
    subjects, pseudonyms = [], []
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for person in PEOPLE:
            email = normalize(IdentifierKind.EMAIL, person.email, rules=unit.kit.rules)
            phone = normalize(IdentifierKind.PHONE, person.phone, rules=unit.kit.rules)
            subject_id = create_subject(unit.session, identifiers=[email, phone], kit=unit.kit, now=unit.clock())
            fields = {
                "name": person.name,
                "birth_date": person.birth_date,
                "street_address": person.street_address,
                "email": email.value,
                "phone": phone.value,
            }
            write_pii(unit.session, subject_id, fields, unit.kit, unit.clock())
            consent.record(
                unit.session,
                subject_id=subject_id,
                key=ConsentKey(ConsentPurpose.ANALYTICS),
                granted=True,
                legal_basis=LegalBasis.CONSENT,
                source=CONSENT_SOURCE,
                policy_version="2024-05",
                now=unit.clock(),
            )
            subjects.append(subject_id)
            pseudonyms.append(unit.kit.pseudonymizer.pseudonym(email).digest)
    return Stored(runtime, subjects, pseudonyms)


def found_in(haystack: bytes, needles: set[str]) -> set[str]:
    """ASCII-case-insensitive search in UTF-8 and both UTF-16 byte orders."""
    lowered = haystack.lower()
    return {
        needle
        for needle in needles
        for encoding in ("utf-8", "utf-16-le", "utf-16-be")
        if needle.strip() and needle.strip().encode(encoding).lower() in lowered
    }


def sqlite_bytes(runtime: Runtime) -> bytes:
    with runtime.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database = Path(str(make_url(runtime.settings.effective_database_url).database))
    files = {database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
    files |= {path for path in database.parent.rglob("*") if path.is_file()}
    return b"".join(path.read_bytes() for path in sorted(files) if path.exists())


def pg_dump_bytes(runtime: Runtime) -> bytes:
    """The dump as text, plus every bytea value hex-decoded: plaintext hidden in a bytea column shows too."""
    executable = shutil.which("pg_dump")
    if executable is None:
        skip_or_fail("pg_dump is not on PATH")
        raise AssertionError("unreachable")
    url = make_url(runtime.settings.effective_database_url)
    dump = subprocess.run(
        [
            executable,
            "--no-password",
            "--format=plain",
            f"--host={url.host}",
            f"--port={url.port or 5432}",
            f"--username={url.username}",
            f"--dbname={url.database}",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    decoded = b"".join(
        bytes.fromhex(match[: len(match) // 2 * 2].decode()) for match in re.findall(rb"\\x([0-9a-f]{2,})", dump)
    )
    return dump + b"\n" + decoded


def test_no_identifier_or_pii_is_stored_in_clear(stored: Stored, backend: str) -> None:
    haystack = sqlite_bytes(stored.runtime) if backend == "sqlite" else pg_dump_bytes(stored.runtime)
    # The scan reads the real data: a plain label and the keyed hashes (raw or hex-decoded) are there.
    assert CONSENT_SOURCE.encode() in haystack
    assert all(digest in haystack for digest in stored.pseudonyms)
    for person in PEOPLE:
        assert found_in(haystack, person.needles()) == set(), person.email.strip()[:1]


def ciphertext(runtime: Runtime, subject_id: int, field: str) -> bytes:
    with runtime.sessions() as session:
        blob = session.scalar(
            select(SubjectPiiRow.ciphertext).where(SubjectPiiRow.subject_id == subject_id, SubjectPiiRow.field == field)
        )
    assert blob is not None
    return bytes(blob)


def overwrite_ciphertext(runtime: Runtime, subject_id: int, field: str, blob: bytes) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            update(SubjectPiiRow)
            .where(SubjectPiiRow.subject_id == subject_id, SubjectPiiRow.field == field)
            .values(ciphertext=blob)
        )


def assert_unreadable(runtime: Runtime, subject_id: int) -> None:
    with runtime.sessions() as session, pytest.raises(DecryptionFailed) as refused:
        read_pii(session, subject_id, runtime.kit)
    assert str(refused.value) == "decryption failed"


def test_a_ciphertext_copied_to_another_subject_does_not_decrypt(stored: Stored) -> None:
    ana, ben, _ = stored.subjects
    overwrite_ciphertext(stored.runtime, ben, "email", ciphertext(stored.runtime, ana, "email"))
    assert_unreadable(stored.runtime, ben)


def test_a_ciphertext_copied_to_another_field_does_not_decrypt(stored: Stored) -> None:
    ana = stored.subjects[0]
    overwrite_ciphertext(stored.runtime, ana, "name", ciphertext(stored.runtime, ana, "birth_date"))
    assert_unreadable(stored.runtime, ana)


@pytest.mark.parametrize("position", [0, 5, 20, -1], ids=["version", "nonce", "body", "tag"])
def test_a_flipped_byte_does_not_decrypt(stored: Stored, position: int) -> None:
    ana = stored.subjects[0]
    blob = bytearray(ciphertext(stored.runtime, ana, "street_address"))
    blob[position] ^= 0x01
    overwrite_ciphertext(stored.runtime, ana, "street_address", bytes(blob))
    assert_unreadable(stored.runtime, ana)


def test_a_wrapped_data_key_copied_to_another_subject_does_not_unwrap(stored: Stored) -> None:
    ana, ben, _ = stored.subjects
    with stored.runtime.sessions.begin() as session:
        wrapped = session.scalar(select(SubjectKeyRow.wrapped_dek).where(SubjectKeyRow.subject_id == ana))
        session.execute(update(SubjectKeyRow).where(SubjectKeyRow.subject_id == ben).values(wrapped_dek=wrapped))
    assert_unreadable(stored.runtime, ben)
    with stored.runtime.sessions() as session:
        assert read_pii(session, ana, stored.runtime.kit)["name"] == PEOPLE[0].name


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o620, 0o602])
def test_a_keyring_file_others_can_touch_is_refused(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AUDIENCE_KEYRING", "AUDIENCE_CONFIG", "AUDIENCE_KEYRING_PATH", "AUDIENCE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDIENCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "300")
    keyring = generate_keyring()
    path = tmp_path / "keyring.json"
    write_keyring_file(path, keyring)
    path.chmod(mode)

    code = main(["keys", "status"])

    err = capsys.readouterr().err
    assert code == 2
    [line] = err.strip().splitlines()
    assert f"mode {mode:04o}" in line
    assert "chmod 600" in line
    secrets = [base64.b64encode(secret).decode() for versions in keyring.keys.values() for secret in versions.values()]
    assert not any(secret in err for secret in secrets)
    assert not (tmp_path / "audience.db").exists(), "nothing is opened with a keyring others can read"
