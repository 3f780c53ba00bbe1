"""A server that starts finishes the erasures a crash left half done, before it serves anyone."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from privacy.keyring import Keyring
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier
from server.requests import execution, records
from server.requests.lifecycle import RequestKind
from server.runtime import Runtime
from server.storage.tables import SubjectRequestRow
from tests.ingest.batches import event, fixed_clock, ingest, subject_of
from tests.support.live_server import serving

EMAIL = "resume.me@example.org"


def test_server_start_finishes_an_interrupted_erasure(
    runtime: Runtime, database_url: str, keyring: Keyring, tmp_path: Path
) -> None:
    clocked = fixed_clock(runtime)
    ingest(clocked, [event(email=EMAIL)])
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        filed = records.file_request(
            unit, kind=RequestKind.ERASURE, identifier=RawIdentifier(IdentifierKind.EMAIL, EMAIL)
        )
        records.verify_request(unit, filed.id, method="email-challenge", reference="t:1")
    execution._begin(runtime, SYSTEM_ACTOR, filed.id, frozenset({RequestKind.ERASURE}))
    assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is not None

    with serving(directory=tmp_path / "server", database_url=database_url, keyring=keyring):
        with runtime.sessions() as session:
            status = session.scalar(select(SubjectRequestRow.status).where(SubjectRequestRow.id == filed.id))
        assert status == "completed"  # finished in the lifespan, before the first request was served
        assert subject_of(runtime, IdentifierKind.EMAIL, EMAIL) is None
