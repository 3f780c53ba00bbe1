"""After an erasure, probed as an attacker holding the server's files: the database (SQLite file and
its WAL, or a ``pg_dump``), the server's log and every other file in its data directory.

Two people are sent to a real server over GraphQL (events carrying email and phone, then declared
names, birth date and address); one is erased. PII is encrypted at rest anyway, so the probe also
looks for what *would* still tie the files to the person: the keyed hashes of their identifiers
(allowed only in the suppression list, by design), their wrapped data key, and their subject ids in
any integer column of any table. The other person's pseudonyms are found by the same scan, which
shows it reads the data. Then the same person is sent again over HTTP: refused as ``SUPPRESSED``,
and a resent event is a duplicate.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Integer, func, inspect, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.engine import make_url

from privacy.identifiers import IdentifierKind, normalize
from privacy.keyring import Keyring
from server.auth.principal import Role
from server.erasure import scrub_database_files
from server.runtime import Runtime
from server.storage.tables import IdentityRow, SubjectKeyRow
from server.subjects.reach import persons_reached
from tests.conftest import fresh_database_url
from tests.privacy.erasure_people import erase
from tests.privacy.test_at_rest import INGEST, UPSERT, Person, found_in, pg_dump_bytes, segment_event
from tests.support.databases import BACKENDS
from tests.support.live_server import LiveServer, start_server

ANA = Person(
    "Anastasia Querétaro-Lindqvist",
    "anastasia.q@example.org",
    "+49 30 7654321",
    "1984-03-12",
    "Kastanienallee 17, Berlin",
)
BEN = Person(
    "Bartholomew Okonkwo", "bart.okonkwo@mail.example.com", "+33 1 23 45 67 89", "1971-11-30", "27 rue Lombard"
)
RESEND = "mutation($batch: EventBatchInput!) { ingestEvents(batch: $batch) { accepted duplicates } }"
AUDIT_TABLES = frozenset({"audit_log", "audit_head"})
"""Append-only and hash-chained: they keep the random subject id of earlier audited acts (a
``subject:<id>`` target), which after erasure resolves to nothing (docs/erasure.md)."""


@dataclass
class Erased:
    server: LiveServer
    backend: str
    directory: Path
    admin: str
    ana_subjects: list[int]
    ana_pseudonyms: set[bytes]
    ana_keys: set[bytes]
    ben_pseudonyms: set[bytes]
    ana_events: list[dict[str, Any]]
    before: bytes

    @property
    def runtime(self) -> Runtime:
        return self.server.runtime


def send(server: LiveServer, token: str, person: Person, customer: str) -> list[dict[str, Any]]:
    traits = {"context.traits.email": person.email, "context.traits.phone": person.phone}
    events = [segment_event(customer, **traits) for _ in range(3)]
    answer = server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()
    assert answer["data"]["ingestEvents"]["accepted"] == 3, answer
    first, last = person.name.split(" ", 1)
    record = {
        "userId": customer,
        "firstName": first,
        "lastName": last,
        "birthDate": person.birth_date,
        "streetAddress": person.street_address,
    }
    answer = server.graphql(UPSERT, token=token, variables={"batch": {"records": [record]}}).json()
    assert answer["data"]["upsertAttributes"]["accepted"] == 1, answer
    return events


def subjects_of(runtime: Runtime, person: Person) -> list[int]:
    with runtime.sessions() as session:
        return persons_reached(
            session, normalize(IdentifierKind.EMAIL, person.email, rules=runtime.kit.rules), runtime.kit
        )


def column_values(runtime: Runtime, model: Any, column: Any, subject_ids: list[int]) -> set[bytes]:
    with runtime.sessions() as session:
        return {bytes(v) for v in session.scalars(select(column).where(model.subject_id.in_(subject_ids)))}


def files_under(directory: Path) -> bytes:
    """Every file as it is on disk: no checkpoint first (the erasure's own scrub must have done it)."""
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


def plain_dump(runtime: Runtime) -> bytes:
    url = make_url(runtime.settings.effective_database_url)
    executable = shutil.which("pg_dump")
    assert executable is not None
    command = [executable, "--no-password", f"--host={url.host}", f"--port={url.port or 5432}"]
    command += [f"--username={url.username}", f"--dbname={url.database}"]
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


def bytea_decoded(dump: bytes) -> bytes:
    """Every ``\\x..`` bytea value of a dump as raw bytes, so a digest or key is found as stored."""
    return b"".join(bytes.fromhex(m[: len(m) // 2 * 2].decode()) for m in re.findall(rb"\\x([0-9a-f]{2,})", dump))


def haystack(erased_dir: Path, runtime: Runtime, backend: str) -> bytes:
    files = files_under(erased_dir)
    return files if backend == "sqlite" else files + pg_dump_bytes(runtime)


def without_suppressions(directory: Path, runtime: Runtime, backend: str, scratch: Path) -> bytes:
    """The same files with the suppression list emptied, so what remains shows where else a pseudonym lives.

    SQLite: a copy of the database whose ``suppressions`` rows are deleted with ``secure_delete``
    (as the server deletes); PostgreSQL: the dump without that table's data.
    """
    if backend == "postgresql":
        dump = plain_dump(runtime)
        cut = re.sub(rb"COPY public\.suppressions .*?\n\\\.\n", b"", dump, flags=re.S)
        assert cut != dump, "the dump has a suppressions section to remove"
        return files_under(directory) + cut + b"\n" + bytea_decoded(cut)
    database = Path(str(make_url(runtime.settings.effective_database_url).database))
    copy = scratch / "copy.db"
    for suffix in ("", "-wal"):
        if database.with_name(database.name + suffix).exists():
            shutil.copyfile(database.with_name(database.name + suffix), copy.with_name(copy.name + suffix))
    connection = sqlite3.connect(copy, isolation_level=None)
    connection.execute("PRAGMA secure_delete=ON")
    connection.execute("DELETE FROM suppressions")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    others = b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file() and p.name != database.name)
    return copy.read_bytes() + others


@pytest.fixture(scope="module", params=BACKENDS)
def erased(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[Erased]:
    backend = str(request.param)
    directory = tmp_path_factory.mktemp(f"erasure-at-rest-{backend}")
    urls = fresh_database_url(request, backend, directory)
    server = start_server(directory=directory, database_url=next(urls), keyring=keyring)
    try:
        admin = server.issue_key(Role.ADMIN)
        ana_events = send(server, admin, ANA, "cust-ana-1")
        send(server, admin, BEN, "cust-ben-2")
        runtime = server.runtime
        ana = subjects_of(runtime, ANA)
        ben = subjects_of(runtime, BEN)
        state = Erased(
            server=server,
            backend=backend,
            directory=directory,
            admin=admin,
            ana_subjects=ana,
            ana_pseudonyms=column_values(runtime, IdentityRow, IdentityRow.pseudonym, ana),
            ana_keys=column_values(runtime, SubjectKeyRow, SubjectKeyRow.wrapped_dek, ana),
            ben_pseudonyms=column_values(runtime, IdentityRow, IdentityRow.pseudonym, ben),
            ana_events=ana_events,
            before=b"",
        )
        with runtime.engine.connect() as connection:
            if backend == "sqlite":
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        state.before = haystack(directory, runtime, backend)
        receipt = erase(runtime, ana)
        assert receipt.subjects == 1
        assert scrub_database_files(runtime.engine).complete
        yield state
    finally:
        server.stop()
        urls.close()


def test_the_scan_saw_the_person_before_the_erasure(erased: Erased) -> None:
    assert len(erased.ana_pseudonyms) == 3
    assert erased.ana_keys
    assert all(p in erased.before for p in erased.ana_pseudonyms | erased.ana_keys)


def test_nothing_of_the_erased_person_is_in_any_file_or_dump(erased: Erased) -> None:
    found = haystack(erased.directory, erased.runtime, erased.backend)
    assert found_in(found, ANA.needles()) == set()
    assert [k for k in erased.ana_keys if k in found] == [], "the wrapped data key is gone from the files"


def test_the_erased_persons_pseudonyms_are_only_in_the_suppression_list(erased: Erased, tmp_path: Path) -> None:
    everywhere = haystack(erased.directory, erased.runtime, erased.backend)
    assert all(p in everywhere for p in erased.ana_pseudonyms), "kept in the suppression list, by design"
    elsewhere = without_suppressions(erased.directory, erased.runtime, erased.backend, tmp_path)
    assert [p for p in erased.ana_pseudonyms if p in elsewhere] == []
    assert all(p in elsewhere for p in erased.ben_pseudonyms), "the scan reads the other person's rows"


def test_no_table_holds_the_erased_subject_ids(erased: Erased) -> None:
    holding: list[str] = []
    engine = erased.runtime.engine
    inspector = inspect(engine)
    with erased.runtime.sessions() as session:
        for table in sorted(set(inspector.get_table_names()) - AUDIT_TABLES):
            for column in inspector.get_columns(table):
                if isinstance(column["type"], BigInteger | Integer):
                    reflected = sql_table(table, sql_column(column["name"]))
                    where = reflected.c[column["name"]].in_(erased.ana_subjects)
                    if session.scalar(select(func.count()).select_from(reflected).where(where)):
                        holding.append(f"{table}.{column['name']}")
    assert holding == []


def test_the_erased_person_sent_again_is_suppressed_and_a_resent_event_is_a_duplicate(erased: Erased) -> None:
    server, token = erased.server, erased.admin
    again = [segment_event("cust-ana-new", **{"context.traits.email": "  Anastasia.Q@EXAMPLE.org"})]
    answer = server.graphql(INGEST, token=token, variables={"batch": {"events": again}}).json()["data"]["ingestEvents"]
    assert (answer["accepted"], [r["code"] for r in answer["rejected"]]) == (0, ["SUPPRESSED"])
    resent = server.graphql(RESEND, token=token, variables={"batch": {"events": erased.ana_events[:1]}}).json()
    assert resent["data"]["ingestEvents"]["duplicates"] == 1
    assert subjects_of(erased.runtime, ANA) == [], "nothing of hers came back"
