"""At rest, probed as an attacker holding a copy of the database (and maybe write access), not the keyring.

Known people are stored through the services; then the SQLite files and a `pg_dump` are scanned
for their identifiers and PII in every spelling we can think of, and ciphertexts and wrapped
keys are moved around or altered in the database to show they refuse to decrypt. A sender then
writes a known email, phone and name into every text field it controls, over GraphQL and in
files, and the same scan finds none of them.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from privacy.consent import ConsentKey, ConsentPurpose, LegalBasis
from privacy.field_crypto import DecryptionFailed
from privacy.identifiers import IdentifierKind, normalize
from privacy.keyring import Keyring, generate_keyring, write_keyring_file
from server.auth.principal import SYSTEM_ACTOR, Role
from server.cli.main import main
from server.consent import service as consent
from server.runtime import Runtime
from server.storage.tables import SubjectKeyRow, SubjectPiiRow
from server.subjects.service import create_subject, read_pii, write_pii
from tests.conftest import fresh_database_url
from tests.support.cli import run_audience
from tests.support.databases import BACKENDS, skip_or_fail
from tests.support.live_server import LiveServer, start_server

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


# --- What a sender writes -------------------------------------------------------------------
# Each probe is one text field a sender controls, on one path (GraphQL, a CSV or NDJSON file, the
# CLI). It gets a person of its own and carries every spelling of that person's email, phone and
# name, each in its own record, so a probe's finding names the field that kept it. One server per
# backend receives all probes; the database is scanned once and each probe looks for its person.

EVENT_FIELDS = (
    "type",
    "channel",
    "timestamp",
    "userId",
    "anonymousId",
    "context.traits.email",
    "context.traits.phone",
    "context.partnerUserId",
    "context.consent.purposes",
    "properties.topics",
    "properties.category",
    "properties.currency",
    "properties.campaign",
    "properties.region",
    "properties.<key>",
)
ATTRIBUTE_FIELDS = (
    "userId",
    "anonymousId",
    "email",
    "phone",
    "firstName",
    "lastName",
    "birthDate",
    "streetAddress",
    "gender",
    "region",
)
CSV_COLUMNS = (
    "event",
    "channel",
    "timestamp",
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "partner",
    "partner_user_id",
    "topics",
    "category",
    "currency",
    "campaign",
    "region",
    "consent_purposes",
    "<column>",
)
NDJSON_FIELDS = ("properties.campaign", "properties.region", "context.traits.email", "properties.<key>")
MESSAGE_ID_PROBES = ("graphql event messageId", "csv message_id", "ndjson messageId")
PROBES = (
    *(f"graphql event {name}" for name in EVENT_FIELDS),
    "graphql batch.source",
    "graphql partner event context.partnerUserId",
    "graphql partner event properties.campaign",
    *(f"graphql attributes {name}" for name in ATTRIBUTE_FIELDS),
    "graphql recordConsent identifier.value",
    "graphql recordConsent source",
    "graphql recordConsent policyVersion",
    "graphql recordPrivacySignal source",
    *(f"csv {name}" for name in CSV_COLUMNS),
    *(f"ndjson {name}" for name in NDJSON_FIELDS),
    "cli import --source",
    *MESSAGE_ID_PROBES,
)
_CONSONANTS = "bcdfghjklmnpqrstvwxz"  # no hex digit: a tag never hides in a hex dump by chance


def probe_person(probe: str) -> Person:
    index = PROBES.index(probe)
    tag = _CONSONANTS[index // len(_CONSONANTS)] + _CONSONANTS[index % len(_CONSONANTS)]
    return Person(
        name=f"Wil{tag}mina Okon{tag}kwo",
        email=f"wil{tag}.okon{tag}@example.org",
        phone=f"+49 30 {2_345_600 + 17 * index}",
        birth_date=f"1931-{1 + index % 12:02d}-{1 + index % 28:02d}",
        street_address=f"{index} Rue Lam{tag}bert, Lyon",
    )


def spellings(person: Person) -> list[str]:
    """What a sender could write: the values as given, and the parts a label pattern would let through."""
    first, last = person.name.split()
    local = person.email.split("@")[0]
    digits = re.sub(r"\D", "", person.phone)
    return [person.email, local, person.phone, digits, person.name, first, last, last.lower(), last.upper()]


def _set(record: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """``record`` with ``value`` at a dotted path; ``<key>`` puts it under a key named after it."""
    *parents, leaf = path.split(".")
    level = record
    for name in parents:
        level = level.setdefault(name, {})
    if leaf == "<key>":
        level[str(value)] = value
    elif leaf in {"purposes", "topics"}:
        level[leaf] = [value]
    else:
        level[leaf] = value
    return record


def segment_event(customer: str, **paths: object) -> dict[str, Any]:
    """A valid page view with analytics consent, carried by a customer id of its own."""
    record: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(8)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "userId": customer,
        "context": {"consent": {"purposes": ["analytics"], "gpc": False}},
        "properties": {"category": "Travel"},
    }
    for path, value in paths.items():
        _set(record, path, value)
    return record


INGEST = """
mutation($batch: EventBatchInput!) {
  ingestEvents(batch: $batch) { received accepted rejected { code } errors { code } }
}"""
UPSERT = """
mutation($batch: AttributeBatchInput!) {
  upsertAttributes(batch: $batch) { received accepted rejected { code } errors { code } }
}"""
RECORD_CONSENT = """
mutation($input: RecordConsentInput!) { recordConsent(input: $input) { recorded errors { code } } }"""
RECORD_SIGNAL = """
mutation($input: PrivacySignalInput!) { recordPrivacySignal(input: $input) { recorded errors { code } } }"""
SOURCE_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


@dataclass
class Probed:
    haystack: bytes
    partner_id: int
    landed: dict[str, int]  # probe -> records or requests the server took in


class Sender:
    """Sends the probes to one live server, over GraphQL and through `audience import`."""

    def __init__(self, server: LiveServer, directory: Path) -> None:
        self.server, self.directory = server, directory
        self.admin = server.issue_key(Role.ADMIN)
        self.compliance = server.issue_key(Role.COMPLIANCE)
        self.partner = server.new_partner()
        self.partner_token = server.issue_key(Role.PARTNER, partner_id=self.partner.id)
        self.landed: dict[str, int] = {}

    def ingest(self, probe: str, events: list[dict[str, Any]], *, token: str | None = None, **batch: str) -> None:
        answer = self.server.graphql(
            INGEST, token=token or self.admin, variables={"batch": {"events": events, **batch}}
        )
        payload = answer.json()["data"]["ingestEvents"]
        self.landed[probe] = self.landed.get(probe, 0) + payload["accepted"]

    def graphql_events(self) -> None:
        for field in EVENT_FIELDS:
            probe = f"graphql event {field}"
            values = spellings(probe_person(probe))
            self.ingest(probe, [segment_event(f"c-{secrets.token_hex(6)}", **{field: v}) for v in values])
        probe = "graphql event messageId"
        self.ingest(
            probe, [segment_event(f"c-{secrets.token_hex(6)}", messageId=v) for v in spellings(probe_person(probe))]
        )
        probe = "graphql batch.source"
        for value in spellings(probe_person(probe)):
            if SOURCE_LABEL.match(value):
                self.ingest(probe, [segment_event(f"c-{secrets.token_hex(6)}")], source=value)
        for field in ("context.partnerUserId", "properties.campaign"):
            probe = f"graphql partner event {field}"
            events = [segment_event(f"p-{secrets.token_hex(6)}", **{field: v}) for v in spellings(probe_person(probe))]
            self.ingest(probe, events, token=self.partner_token)

    def graphql_attributes(self) -> None:
        for field in ATTRIBUTE_FIELDS:
            probe = f"graphql attributes {field}"
            person = probe_person(probe)
            values = [*spellings(person), person.birth_date, person.street_address]
            customers = [f"c-{secrets.token_hex(6)}" for _ in values]
            self.ingest(f"{probe} (seen first)", [segment_event(customer) for customer in customers])
            records = [{"userId": customer, field: value} for customer, value in zip(customers, values, strict=True)]
            answer = self.server.graphql(UPSERT, token=self.admin, variables={"batch": {"records": records}})
            self.landed[probe] = answer.json()["data"]["upsertAttributes"]["accepted"]

    def graphql_consent(self) -> None:
        for field in ("identifier.value", "source", "policyVersion"):
            probe = f"graphql recordConsent {field}"
            for value in spellings(probe_person(probe)):
                statement: dict[str, Any] = {
                    "identifier": {"kind": "CUSTOMER_ID", "value": f"c-{secrets.token_hex(6)}"},
                    "purpose": "ANALYTICS",
                    "granted": True,
                    "source": "cmp:web",
                    "policyVersion": "2024-05",
                }
                if field == "identifier.value":
                    kind = (
                        "EMAIL"
                        if "@" in value
                        else "PHONE"
                        if value.lstrip("+").replace(" ", "").isdigit()
                        else "CUSTOMER_ID"
                    )
                    statement["identifier"] = {"kind": kind, "value": value}
                else:
                    statement[field] = value
                answer = self.server.graphql(RECORD_CONSENT, token=self.compliance, variables={"input": statement})
                self.landed[probe] = self.landed.get(probe, 0) + answer.json()["data"]["recordConsent"]["recorded"]
        probe = "graphql recordPrivacySignal source"
        for value in spellings(probe_person(probe)):
            signal = {
                "identifier": {"kind": "CUSTOMER_ID", "value": f"c-{secrets.token_hex(6)}"},
                "signal": "GLOBAL_PRIVACY_CONTROL",
                "source": value,
            }
            answer = self.server.graphql(RECORD_SIGNAL, token=self.compliance, variables={"input": signal})
            self.landed[probe] = self.landed.get(probe, 0) + answer.json()["data"]["recordPrivacySignal"]["recorded"]

    def files(self) -> None:
        rows: list[dict[str, str]] = []
        for column in (*CSV_COLUMNS, "message_id"):
            probe = f"csv {column}"
            for value in spellings(probe_person(probe)):
                row = {
                    "message_id": f"f-{secrets.token_hex(8)}",
                    "event": "page_view",
                    "channel": "web",
                    "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                    "user_id": f"c-{secrets.token_hex(6)}",
                    "consent_purposes": "analytics",
                }
                if column == "<column>":
                    row[value] = value
                else:
                    row[column] = value
                rows.append(row)
        header = sorted({name for row in rows for name in row})
        csv_path = self.directory / "probes.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        lines = [
            segment_event(f"c-{secrets.token_hex(6)}", **{field: value})
            for field in NDJSON_FIELDS
            for value in spellings(probe_person(f"ndjson {field}"))
        ]
        lines += [
            segment_event(f"c-{secrets.token_hex(6)}", messageId=value)
            for value in spellings(probe_person("ndjson messageId"))
        ]
        ndjson_path = self.directory / "probes.ndjson"
        ndjson_path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        sources = [v for v in spellings(probe_person("cli import --source")) if SOURCE_LABEL.match(v)]
        for path, source in zip((csv_path, ndjson_path, csv_path), sources, strict=False):
            result = run_audience(
                "import",
                str(path),
                "--source",
                source,
                "--report",
                str(self.directory / "report.csv"),
                directory=self.directory,
                env={
                    "AUDIENCE_DATA_DIR": str(self.server.runtime.settings.data_dir),
                    "AUDIENCE_DATABASE_URL": self.server.runtime.settings.effective_database_url,
                },
            )
            assert result.returncode == 0, result.stderr
            accepted = re.search(r"accepted\s*[│|]\s*([\d,]+)", result.stdout)
            assert accepted is not None, result.stdout
            self.landed[f"cli import {path.suffix}"] = int(accepted[1].replace(",", ""))


@pytest.fixture(scope="module", params=BACKENDS)
def probed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[Probed]:
    backend = str(request.param)
    directory = tmp_path_factory.mktemp(f"at-rest-{backend}")
    (directory / "data").mkdir()
    urls = fresh_database_url(request, backend, directory / "data")
    server = start_server(directory=directory / "data", database_url=next(urls), keyring=keyring)
    try:
        sender = Sender(server, directory)
        sender.graphql_events()
        sender.graphql_attributes()
        sender.graphql_consent()
        sender.files()
        haystack = sqlite_bytes(server.runtime) if backend == "sqlite" else pg_dump_bytes(server.runtime)
        yield Probed(haystack, sender.partner.id, sender.landed)
    finally:
        server.stop()
        urls.close()


def test_the_probes_reached_the_database(probed: Probed) -> None:
    """The scan below proves something only if the records carrying the values were stored."""
    assert f"partner:{probed.partner_id}".encode() in probed.haystack
    per_record = len(spellings(probe_person(PROBES[0])))
    for label in ("properties.campaign", "properties.region", "properties.<key>", "properties.category"):
        assert probed.landed[f"graphql event {label}"] == per_record, label
    assert probed.landed["graphql partner event properties.campaign"] == per_record
    assert probed.landed["graphql batch.source"] >= 3
    assert probed.landed["graphql recordPrivacySignal source"] >= 3
    assert probed.landed["graphql attributes firstName"] == per_record + 2
    assert probed.landed["cli import .csv"] >= per_record * 5
    assert probed.landed["cli import .ndjson"] >= per_record * 3


@pytest.mark.parametrize("probe", PROBES)
def test_no_text_a_sender_writes_is_stored_in_clear(probed: Probed, probe: str) -> None:
    person = probe_person(probe)
    assert found_in(probed.haystack, person.needles()) == set(), probe
