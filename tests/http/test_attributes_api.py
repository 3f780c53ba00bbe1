"""Declared attributes: stored only for known, consenting people, PII encrypted, quasi-identifiers banded."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from server.auth.principal import Role
from server.storage.tables import SubjectPiiRow, SubjectTraitsRow
from server.subjects.service import read_pii
from tests.http.test_ingest_api import INGEST, event
from tests.support.live_server import LiveServer

UPSERT = """
mutation($batch: AttributeBatchInput!) {
  upsertAttributes(batch: $batch) { received accepted fieldsEncrypted rejected { index code message } errors { code } }
}"""


def test_attributes_of_a_known_person_are_encrypted_and_banded(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    customer = f"cust-{secrets.token_hex(4)}"
    seen = live_server.graphql(INGEST, token=token, variables={"batch": {"events": [event(userId=customer)]}})
    assert seen.json()["data"]["ingestEvents"]["accepted"] == 1
    record = {
        "userId": customer,
        "firstName": "Anastasia",
        "lastName": "Quintero",
        "birthYear": 1990,
        "gender": "Female",
        "region": "FR-IDF",
        "email": "Ana.Quintero@Example.org",
        "streetAddress": "12 rue des Lilas",
    }
    result = live_server.graphql(UPSERT, token=token, variables={"batch": {"records": [record]}}).json()
    payload = result["data"]["upsertAttributes"]
    assert (payload["accepted"], payload["fieldsEncrypted"], payload["rejected"]) == (1, 4, [])

    with live_server.runtime.sessions() as session:
        traits = session.scalars(select(SubjectTraitsRow)).all()
        mine = [t for t in traits if t.region == "FR-IDF" and t.gender == "female"]
        assert len(mine) == 1
        subject_id = mine[0].subject_id
        assert mine[0].age_band in {"35-44", "25-34"}
        stored = session.scalars(select(SubjectPiiRow.ciphertext).where(SubjectPiiRow.subject_id == subject_id)).all()
        assert all(b"Anastasia" not in blob and b"Lilas" not in blob for blob in stored)
        fields = read_pii(session, subject_id, live_server.runtime.kit)
    assert fields == {
        "first_name": "Anastasia",
        "last_name": "Quintero",
        "email": "ana.quintero@example.org",
        "street_address": "12 rue des Lilas",
    }


def test_attributes_never_create_a_person_and_bad_values_are_named_not_echoed(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    records = [
        {"userId": f"stranger-{secrets.token_hex(4)}", "firstName": "Nobody"},
        {"userId": "x", "birthYear": 1850},
        {"email": "broken.at.example.org"},
        {"firstName": "No identifier"},
        {"userId": "y", "gender": "Attack helicopter"},
    ]
    body = live_server.graphql(UPSERT, token=token, variables={"batch": {"records": records}}).json()
    codes = {r["index"]: r["code"] for r in body["data"]["upsertAttributes"]["rejected"]}
    assert codes == {
        0: "UNKNOWN_SUBJECT",
        1: "INVALID_BIRTH_YEAR",
        2: "INVALID_EMAIL",
        3: "NO_IDENTIFIER",
        4: "INVALID_GENDER",
    }
    assert "helicopter" not in str(body).lower()
    assert "broken.at" not in str(body)
