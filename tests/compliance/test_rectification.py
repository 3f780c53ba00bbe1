"""Rectification (Art. 16): declared attributes change as stored, the audit says only what kind of
value each field held before and after, and a refused change leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl
import pytest
from sqlalchemy import select, text

from server.auth.principal import SYSTEM_ACTOR
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.catalogue import CATALOGUE
from server.ingest.setup import guardrails_from
from server.rectification.service import FieldChange, RectificationError, ValueKind, rectify
from server.runtime import Runtime
from server.storage.tables import SubjectPiiRow, SubjectTraitsRow
from server.subjects.service import read_pii
from tests.compliance.people import reached, visit
from tests.ingest.batches import NOW, fixed_clock, ingest

RAE = "rae.rectify@example.org"
OLD_NAME, NEW_NAME = "Raelynn", "Rosalind"
NEW_EMAIL = "Rae.New@Example.org"


def declared_person(runtime: Runtime) -> int:
    """Rae, known through an event, with a first and last name, a birth year and a region."""
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit(RAE, 30)])
    records = pl.DataFrame(
        [{"email": RAE, "first_name": OLD_NAME, "last_name": "Quill", "birth_year": 1990, "region": "FR-IDF"}],
        schema=ATTRIBUTE_SCHEMA,
    )
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
    assert result.accepted == 1, result.rejected
    (subject,) = reached(runtime, RAE)
    return subject


def apply(runtime: Runtime, subject: int, changes: Mapping[str, str | None]) -> list[FieldChange]:
    with fixed_clock(runtime).unit_of_work(SYSTEM_ACTOR) as unit:  # the age band's year is NOW's
        return rectify(unit, [subject], changes)


def ciphertexts(runtime: Runtime, subject: int) -> dict[str, bytes]:
    with runtime.sessions() as session:
        rows = session.execute(
            select(SubjectPiiRow.field, SubjectPiiRow.ciphertext).where(SubjectPiiRow.subject_id == subject)
        )
        return {field: bytes(blob) for field, blob in rows}


def pii(runtime: Runtime, subject: int) -> dict[str, str]:
    with runtime.sessions() as session:
        return read_pii(session, subject, runtime.kit)


def traits(runtime: Runtime, subject: int) -> tuple[str | None, str | None, str | None]:
    with runtime.sessions() as session:
        row = session.execute(
            select(SubjectTraitsRow.age_band, SubjectTraitsRow.gender, SubjectTraitsRow.region).where(
                SubjectTraitsRow.subject_id == subject
            )
        ).one()
        return row.age_band, row.gender, row.region


def audit_text(runtime: Runtime) -> str:
    """Every audit row, every column, as text: what a reader of the log could see."""
    with runtime.engine.connect() as connection:
        return "\n".join(repr(tuple(row)) for row in connection.execute(text("SELECT * FROM audit_log")))


def rectified_entries(runtime: Runtime) -> list[tuple[str | None, str, str, str]]:
    with runtime.engine.connect() as connection:
        rows = connection.execute(text("SELECT target, details FROM audit_log WHERE action = 'request.rectified'"))
        found = []
        for target, details in rows:
            parsed = details if isinstance(details, dict) else json.loads(details)
            found.append((target, parsed["field"], parsed["before"], parsed["after"]))
        return sorted(found)


def test_rectified_fields_are_stored_encrypted_as_ingestion_keeps_them(runtime: Runtime) -> None:
    subject = declared_person(runtime)
    before = ciphertexts(runtime, subject)
    changes = apply(
        runtime, subject, {"first_name": NEW_NAME, "email": NEW_EMAIL, "birth_year": "1960", "gender": "woman"}
    )
    after = ciphertexts(runtime, subject)
    assert after["first_name"] != before["first_name"]
    held = pii(runtime, subject)
    assert held["first_name"] == NEW_NAME
    assert held["email"] == "rae.new@example.org"  # normalized, as ingestion stores it
    assert held["last_name"] == "Quill"
    assert traits(runtime, subject) == ("55-64", "female", "FR-IDF")
    present, absent = ValueKind.PRESENT, ValueKind.ABSENT
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("birth_year", present, present),
        ("email", present, present),
        ("first_name", present, present),
        ("gender", absent, present),
    ]


def test_a_field_set_to_none_is_removed(runtime: Runtime) -> None:
    subject = declared_person(runtime)
    changes = apply(runtime, subject, {"last_name": None, "region": None})
    assert "last_name" not in ciphertexts(runtime, subject)
    assert traits(runtime, subject) == ("25-34", None, None)
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("last_name", ValueKind.PRESENT, ValueKind.ABSENT),
        ("region", ValueKind.PRESENT, ValueKind.ABSENT),
    ]


def test_the_audit_holds_kinds_and_never_a_value(runtime: Runtime) -> None:
    subject = declared_person(runtime)
    apply(runtime, subject, {"first_name": NEW_NAME, "street_address": "12 Rue des Lilas", "last_name": None})
    assert rectified_entries(runtime) == [
        (f"subject:{subject}", "first_name", "present", "present"),
        (f"subject:{subject}", "last_name", "present", "absent"),
        (f"subject:{subject}", "street_address", "absent", "present"),
    ]
    logged = audit_text(runtime)
    for value in (OLD_NAME, NEW_NAME, "Quill", "12 Rue des Lilas", "Lilas"):
        assert value not in logged


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"shoe_size": "44"}, "UNKNOWN_FIELD", None),
        ({"rosalind@example.org": "44"}, "UNKNOWN_FIELD", None),
        ({"first_name": NEW_NAME, "email": "rae at nowhere"}, "INVALID_EMAIL", "email"),
        ({"first_name": NEW_NAME, "birth_year": "nineteen-sixty"}, "INVALID_BIRTH_YEAR", "birth_year"),
        ({"first_name": NEW_NAME, "birth_year": "1850"}, "INVALID_BIRTH_YEAR", "birth_year"),
        ({"first_name": NEW_NAME, "gender": "Rosalind's secret"}, "INVALID_GENDER", "gender"),
        ({"first_name": NEW_NAME, "region": "Paris, 5 rue Rosalind"}, "INVALID_REGION", "region"),
        ({"first_name": "Rosalind\x00"}, "INVALID_TEXT", "first_name"),
        ({}, "NO_CHANGES", None),
    ],
)
def test_a_refused_change_names_the_field_echoes_nothing_and_leaves_nothing(
    runtime: Runtime, changes: dict[str, str | None], code: str, field: str | None
) -> None:
    subject = declared_person(runtime)
    before = ciphertexts(runtime, subject), traits(runtime, subject)
    with pytest.raises(RectificationError) as refused:
        apply(runtime, subject, changes)
    assert (refused.value.code, refused.value.field) == (code, field)
    for name, value in changes.items():
        assert value is None or value not in str(refused.value)
        assert name in CATALOGUE or name not in str(refused.value)
    assert "Rosalind" not in str(refused.value)
    assert (ciphertexts(runtime, subject), traits(runtime, subject)) == before
    assert rectified_entries(runtime) == []


def test_a_person_without_an_active_subject_is_refused(runtime: Runtime) -> None:
    with pytest.raises(RectificationError) as refused, runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        rectify(unit, [424242], {"first_name": NEW_NAME})
    assert refused.value.code == "NO_ACTIVE_SUBJECT"
