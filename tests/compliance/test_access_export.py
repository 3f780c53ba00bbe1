"""The access and portability export (Art. 15 / 20), on both backends, from data stored the real way.

Ana is built to have rows in every table the registry exports: events on two devices that a
login merges into one person (two fragments), a partner's own user id for her, declared
PII and traits, a consent history, profile state folded in by ingestion, a restriction, and
accesses in the audit log. Bob is ingested alongside; nothing of his may appear in her export.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, or_, select

from privacy.consent import ConsentPurpose
from privacy.identifiers import IdentifierKind, normalize
from privacy.purposes import Purpose
from server.audit.service import page
from server.auth.api_keys import create_key
from server.auth.principal import SYSTEM_ACTOR, Actor, Role
from server.consent.requests import RawIdentifier
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.profiles.service import profile_of
from server.runtime import Runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import evaluate_population
from server.segments.rules import EventWindow, LastDays
from server.storage.subject_tables import SUBJECT_TABLES, ExportPolicy
from server.storage.tables import (
    EventRow,
    IdentityRow,
    SubjectKeyRow,
    SubjectPiiRow,
    SubjectRestrictionRow,
)
from server.subject_access.export import FORMAT, VERSION, export_person
from server.subjects.reach import persons_reached
from server.taxonomy.taxonomy import taxonomy_for
from tests.ingest.batches import NOW, add_partner, event, fixed_clock, ingest
from tests.profiles.consent_steps import record_profiling, record_purpose
from tests.segments.segment_steps import add_grant, add_segment
from tests.segments.segment_steps import consent as share

ANA = "ana.export@example.org"
ANA_PII = {"email": ANA, "phone": "+33612345678", "first_name": "Anastasia", "last_name": "Exportova"}
BOB = "bob.export@example.org"
BOB_PII = {"email": BOB, "phone": "+33698765432", "first_name": "Bartholomew", "last_name": "Elsewhere"}
PROFILING = ["analytics", "profiling"]
FOOTBALL = "sports/football"
REQUEST_ID = 4242


def at(runtime: Runtime, seconds: int) -> Runtime:
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def declare(runtime: Runtime, pii: dict[str, str], *, birth_year: int) -> None:
    records = pl.DataFrame([{**pii, "birth_year": birth_year, "region": "FR"}], schema=ATTRIBUTE_SCHEMA)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
    assert result.accepted == 1, result.rejected


def consent(runtime: Runtime, email: str, purpose: ConsentPurpose, *, granted: bool) -> None:
    record_purpose(runtime, RawIdentifier(IdentifierKind.EMAIL, email), purpose, granted=granted, policy_version="v2")


def person(runtime: Runtime, email: str) -> list[int]:
    with runtime.sessions() as session:
        return persons_reached(session, normalize(IdentifierKind.EMAIL, email, rules=runtime.kit.rules), runtime.kit)


def build_ana(runtime: Runtime, acme: int) -> None:
    phone = [
        event(email=ANA, anonymous_id="ana-phone", consent_purposes=PROFILING, topics=[FOOTBALL], campaign="spring"),
        event(
            email=ANA,
            anonymous_id="ana-phone",
            consent_purposes=PROFILING,
            event="purchase",
            amount=30.0,
            currency="EUR",
            timestamp=NOW - timedelta(days=3),
        ),
    ]
    assert ingest(at(runtime, 0), phone).accepted == 2
    laptop = [event(anonymous_id="ana-laptop", consent_purposes=PROFILING, topics=[FOOTBALL], channel="app")]
    assert ingest(at(runtime, 1), laptop).accepted == 1
    first = ingest(at(runtime, 2), [event(user_id="cust-ana", anonymous_id="ana-phone", consent_purposes=None)])
    second = ingest(at(runtime, 3), [event(user_id="cust-ana", anonymous_id="ana-laptop", consent_purposes=PROFILING)])
    assert (first.accepted, second.accepted, second.merges) == (1, 1, 1)
    from_acme = event(
        partner="acme", email=ANA, partner_user_id="pu-ana", channel="partner", consent_purposes=["analytics"]
    )
    assert ingest(at(runtime, 4), [from_acme]).accepted == 1
    declare(at(runtime, 5), ANA_PII, birth_year=1990)
    record_profiling(at(runtime, 6), ANA, granted=True)
    consent(at(runtime, 7), ANA, ConsentPurpose.ADVERTISING, granted=True)
    consent(at(runtime, 8), ANA, ConsentPurpose.ADVERTISING, granted=False)
    # Shared with acme, whose grant of a segment Ana is in tells it so (segments, shared_with_partners).
    share(at(runtime, 8), ANA, ConsentPurpose.SHARING, partner_id=acme)
    drain_marks(at(runtime, 8))
    ours = min(person(runtime, ANA), key=lambda s: _scope_rank(runtime, s))
    with at(runtime, 9).unit_of_work(SYSTEM_ACTOR) as unit:
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        assert profile_of(
            unit, RawIdentifier(IdentifierKind.EMAIL, ANA), config=unit.profiles, taxonomy=taxonomy, now=NOW
        )
        issued = create_key(unit.session, role=Role.PARTNER, label="acme-app", now=unit.clock(), partner_id=acme)
    # Restricted last: from then on the profile read above would answer nothing (the data is kept).
    with at(runtime, 10).unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.add(SubjectRestrictionRow(subject_id=ours, request_id=None, since=unit.clock()))
    with at(runtime, 11).unit_of_work(Actor(issued.key_id, Role.PARTNER.value)) as unit:
        unit.audit("visitor.lookup", target=f"subject:{ours}", details={"found": True})
    with at(runtime, 12).unit_of_work(SYSTEM_ACTOR) as unit:
        unit.audit("request.verify", target=f"request:{REQUEST_ID}", details={"method": "id_document"})


def _scope_rank(runtime: Runtime, subject_id: int) -> int:
    """0 for the subject linked in our own scope by email, 1 otherwise."""
    with runtime.sessions() as session:
        linked = session.scalar(
            select(func.count())
            .select_from(IdentityRow)
            .where(IdentityRow.subject_id == subject_id, IdentityRow.partner_id.is_(None))
        )
    return 0 if linked else 1


def build_bob(runtime: Runtime) -> None:
    bob = [event(email=BOB, anonymous_id="bob-phone", consent_purposes=PROFILING, topics=[FOOTBALL])]
    assert ingest(at(runtime, 0), bob).accepted == 1
    declare(at(runtime, 5), BOB_PII, birth_year=1970)
    with at(runtime, 10).unit_of_work(SYSTEM_ACTOR) as unit:
        taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
        profile_of(unit, RawIdentifier(IdentifierKind.EMAIL, BOB), config=unit.profiles, taxonomy=taxonomy, now=NOW)


def export(runtime: Runtime, email: str, *, request_id: int | None = REQUEST_ID) -> dict[str, Any]:
    with at(runtime, 60).unit_of_work(SYSTEM_ACTOR) as unit:
        ids = persons_reached(unit.session, normalize(IdentifierKind.EMAIL, email, rules=unit.kit.rules), unit.kit)
        return export_person(unit, ids, request_id=request_id, taxonomy=taxonomy_for(runtime.settings.taxonomy_extra))


@pytest.fixture
def people(runtime: Runtime) -> Runtime:
    acme = add_partner(runtime, "acme")
    buyers = add_segment(runtime, "buyers", EventWindow("purchase", LastDays(30), at_least=1))
    evaluate_population(fixed_clock(runtime))
    add_grant(fixed_clock(runtime), buyers, acme, Purpose.ANALYTICS)
    build_bob(runtime)
    build_ana(runtime, acme)
    return runtime


EXPORTED = [t for t in SUBJECT_TABLES if t.export is not ExportPolicy.EXCLUDE]


def stored_rows(runtime: Runtime, table_name: str, ids: list[int]) -> int:
    """Rows of the table that name any of ``ids`` in any declared subject column."""
    declared = next(t for t in SUBJECT_TABLES if t.name == table_name)
    table = declared.table
    with runtime.sessions() as session:
        query = select(func.count()).select_from(table).where(or_(*(table.c[c].in_(ids) for c in declared.columns)))
        return int(session.scalar(query) or 0)


def walk(value: Any) -> Iterator[Any]:
    """Every scalar in a JSON document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
    else:
        yield value


def test_every_exported_table_appears_in_its_section_with_the_persons_rows(people: Runtime) -> None:
    ids = person(people, ANA)
    document = export(people, ANA)

    assert (document["format"], document["version"], document["request_id"]) == (FORMAT, VERSION, REQUEST_ID)
    assert document["subjects"] == ids
    assert len(ids) == 2  # her subject and the laptop's, merged into it
    for declared in EXPORTED:
        assert declared.section is not None
        block = document["sections"][declared.section]["tables"][declared.name]
        expected = stored_rows(people, declared.name, ids)
        assert expected > 0, f"the scenario gives Ana no rows in {declared.name}: extend it"
        assert (declared.name, block["count"], len(block["rows"])) == (declared.name, expected, expected)
    for section, count in document["counts"].items():
        assert document["sections"][section]["count"] == count
        if section != "accesses":
            assert count == sum(t["count"] for t in document["sections"][section]["tables"].values())


def test_the_sections_are_exactly_the_registrys(people: Runtime) -> None:
    """A table declared later with INCLUDE or DECRYPT gets a section without code in the export."""
    document = export(people, ANA)
    declared = {t.section for t in SUBJECT_TABLES if t.export is not ExportPolicy.EXCLUDE}
    assert set(document["sections"]) == declared | {"accesses"}
    assert set(document["counts"]) == declared | {"accesses"}
    tables = {name for section in declared for name in document["sections"][section]["tables"]}
    assert tables == {t.name for t in SUBJECT_TABLES if t.export is not ExportPolicy.EXCLUDE}
    excluded = {t.name for t in SUBJECT_TABLES if t.export is ExportPolicy.EXCLUDE}
    assert excluded
    assert not excluded & set(walk(document))


def test_personal_data_is_decrypted_to_what_was_sent(people: Runtime) -> None:
    rows = export(people, ANA)["sections"]["personal_data"]["tables"]["subject_pii"]["rows"]
    assert {row["field"]: row["value"] for row in rows} == ANA_PII
    assert all("ciphertext" not in row for row in rows)


def test_identifiers_show_kind_and_scope_never_the_digest(people: Runtime) -> None:
    rows = export(people, ANA)["sections"]["identifiers"]["tables"]["identities"]["rows"]
    shown = {(row["kind"], row["scope"]) for row in rows}
    assert {
        ("email", "ours"),
        ("device_id", "ours"),
        ("customer_id", "ours"),
        ("partner_user_id", "acme"),
    } <= shown
    assert sum(1 for row in rows if row["kind"] == "device_id") == 2  # both devices, merged into one person
    assert all("pseudonym" not in row and isinstance(row["first_seen"], str) for row in rows)
    assert all({"key_version", "first_seen"} <= set(row) for row in rows)


def test_consent_shows_state_and_full_history(people: Runtime) -> None:
    sections = export(people, ANA)["sections"]
    history = sections["consent_history"]["tables"]["consent_records"]["rows"]
    advertising = [row["granted"] for row in history if row["purpose"] == "advertising" and row["partner"] is None]
    assert advertising[-2:] == [True, False]
    state = sections["consent"]["tables"]["consent_state"]["rows"]
    assert any(row["purpose"] == "advertising" and row["granted"] is False for row in state)
    assert any(row["purpose"] == "profiling" and row["granted"] is True for row in state)
    assert any(row["purpose"] == "sharing" and row["partner"] == "acme" for row in state)


def test_profile_is_shown_with_every_interest_explained(people: Runtime) -> None:
    profile = export(people, ANA)["sections"]["profile"]
    (computed,) = profile["computed"]
    assert computed["events_lifetime"] >= 3
    topics = {interest["topic"]: interest for interest in computed["interests"]}
    assert FOOTBALL in topics
    football = topics[FOOTBALL]
    assert football["counts"] == [{"type": "page_view", "events": 2}]
    days = {row["date"] for row in profile["tables"]["profile_daily"]["rows"]}
    assert str((NOW - timedelta(days=3)).date()) in days
    assert isinstance(football["last_seen"], str)
    assert football["last_seen"].endswith("Z")


def test_hashed_labels_are_shown_as_stored_and_named(people: Runtime) -> None:
    events = export(people, ANA)["sections"]["events"]["tables"]["events"]
    assert "campaign" in events["hashed_labels"]
    campaigns = {row["campaign"] for row in events["rows"]} - {None}
    assert campaigns
    assert all(c.startswith("h") and "spring" not in c for c in campaigns)
    assert any(row["topics"] == [FOOTBALL] for row in events["rows"])


def test_accesses_name_the_role_and_partner_never_the_key(people: Runtime) -> None:
    document = export(people, ANA)
    entries = document["sections"]["accesses"]["entries"]
    actions = [entry["action"] for entry in entries]
    assert {"profile.read", "consent.grant", "consent.withdraw", "visitor.lookup", "request.verify"} <= set(actions)
    assert [entry["seq"] for entry in entries] == sorted(entry["seq"] for entry in entries)
    lookup = next(entry for entry in entries if entry["action"] == "visitor.lookup")
    assert (lookup["actor_role"], lookup["partner"]) == ("partner", "acme")
    assert all("actor_key_id" not in entry for entry in entries)
    with people.sessions() as session:
        keys = {entry.actor_key_id for entry in page(session, after_seq=0, first=1_000)} - {None}
    assert keys
    assert not keys & {str(v) for v in walk(document)}
    without_request = export(people, ANA, request_id=None)["sections"]["accesses"]["entries"]
    assert "request.verify" not in {entry["action"] for entry in without_request}


def test_nothing_of_another_person_appears(people: Runtime) -> None:
    bob = person(people, BOB)
    text = json.dumps(export(people, ANA))
    for value in BOB_PII.values():
        assert value not in text
    document = json.loads(text)
    assert not set(bob) & {v for v in walk(document) if isinstance(v, int)}
    assert not {f"subject:{s}" for s in bob} & {v for v in walk(document) if isinstance(v, str)}


def test_no_digest_ciphertext_or_key_appears_anywhere(people: Runtime) -> None:
    text = json.dumps(export(people, ANA))
    with people.sessions() as session:
        secrets = [
            *session.scalars(select(IdentityRow.pseudonym)),
            *session.scalars(select(EventRow.message_key)),
            *session.scalars(select(SubjectKeyRow.wrapped_dek)),
            *session.scalars(select(SubjectPiiRow.ciphertext)),
        ]
    assert len(secrets) > 10
    for blob in secrets:
        for form in (
            blob.hex(),
            blob[:12].hex(),
            base64.b64encode(blob).decode(),
            base64.urlsafe_b64encode(blob).decode(),
        ):
            assert form not in text


def test_the_export_is_audited_with_counts_only(people: Runtime) -> None:
    document = export(people, ANA)
    with people.sessions() as session:
        (entry,) = [e for e in page(session, after_seq=0, first=10_000) if e.action == "access.export"]
    assert entry.target == f"request:{REQUEST_ID}"
    assert dict(entry.details) == {"subjects": 2, **document["counts"]}
    assert not {str(v) for v in entry.details.values()} & set(ANA_PII.values())


def test_an_export_without_request_is_audited_on_the_person(people: Runtime) -> None:
    ids = person(people, ANA)
    export(people, ANA, request_id=None)
    with people.sessions() as session:
        (entry,) = [e for e in page(session, after_seq=0, first=10_000) if e.action == "access.export"]
    assert entry.target == f"subject:{ids[0]}"


def test_the_document_round_trips_through_json(people: Runtime) -> None:
    document = export(people, ANA)
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert not [v for v in walk(document) if isinstance(v, bytes)]


def test_a_subject_whose_key_is_gone_is_exported_without_its_values(people: Runtime) -> None:
    """Crypto-shredded (an erasure under way): the rows are still counted, nothing is readable."""
    ids = person(people, ANA)
    with people.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.query(SubjectKeyRow).filter(SubjectKeyRow.subject_id.in_(ids)).delete()
    rows = export(people, ANA)["sections"]["personal_data"]["tables"]["subject_pii"]["rows"]
    assert len(rows) == len(ANA_PII)
    assert {row["value"] for row in rows} == {None}


def test_nobody_gives_an_empty_document(runtime: Runtime) -> None:
    document = export(runtime, "nobody@example.org")
    assert document["subjects"] == []
    assert set(document["counts"].values()) == {0}
