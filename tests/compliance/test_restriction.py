"""Restriction (Art. 18): the data is kept, every path treats the person as not allowed, lifting restores.

Through real ingestion, the consent service, the build and the profile read, on both backends.
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import text

from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.audit.service import page
from server.auth.principal import SYSTEM_ACTOR
from server.consent.service import subjects_allowed
from server.identity.merge import merge_subjects
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.ingest.vocabulary import RejectCode
from server.profiles.build import run_build
from server.profiles.build_runs import BuildStatus
from server.profiles.service import read_profile
from server.profiles.store import events_of, fold
from server.restriction.service import restricted_among
from server.runtime import Runtime
from server.storage.tables import EventRow, SubjectPiiRow, SubjectRestrictionRow
from server.taxonomy.taxonomy import taxonomy_for
from tests.compliance.people import lift_person, reached, restrict_person, state_of, visit
from tests.ingest.batches import NOW, count, fixed_clock, ingest, subject_of
from tests.profiles.consent_steps import record_profiling
from tests.profiles.state_checks import assert_state_follows_events

RIA = "ria.restricted@example.org"
OLA = "ola.free@example.org"


def known(runtime: Runtime, email: str) -> int:
    subject = subject_of(runtime, IdentifierKind.EMAIL, email)
    assert subject is not None
    return subject


def scalar(runtime: Runtime, query: str, subject_id: int) -> float:
    with runtime.engine.connect() as connection:
        return float(connection.execute(text(query), {"s": subject_id}).scalar_one())


def two_people(runtime: Runtime) -> tuple[int, int]:
    """Ria and Ola, each with events, every consent and profile state; Ria then restricted."""
    ingest(runtime, [visit(RIA, 50), visit(RIA, 40, event="purchase", amount=20.0, currency="EUR"), visit(OLA, 45)])
    ria, ola = known(runtime, RIA), known(runtime, OLA)
    assert state_of(runtime, ria)["profile_summary"]
    assert restrict_person(runtime, RIA) == 1
    return ria, ola


def test_restricting_is_idempotent_and_audited_with_counts_only(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    assert restrict_person(runtime, RIA) == 0
    assert count(runtime, SubjectRestrictionRow, SubjectRestrictionRow.subject_id == ria) == 1
    with runtime.sessions() as session:
        entries = [e for e in page(session, after_seq=0, first=500) if e.action == "restriction.applied"]
    assert [(e.target, dict(e.details)) for e in entries] == [
        ("request:7", {"subjects": 1, "newly_restricted": 1}),
        ("request:7", {"subjects": 1, "newly_restricted": 0}),
    ]


def test_the_gate_refuses_a_restricted_persons_events_as_it_refuses_no_consent(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    held = count(runtime, EventRow, EventRow.subject_id == ria)
    restricted = ingest(runtime, [visit(RIA, 30)])  # its own statement grants everything
    refused = ingest(runtime, [visit(OLA, 30, purposes=[])])  # a statement granting nothing
    assert [r.code for r in restricted.rejected] == [r.code for r in refused.rejected] == [RejectCode.NO_CONSENT]
    assert count(runtime, EventRow, EventRow.subject_id == ria) == held  # nothing new, nothing removed


def test_declared_attributes_of_a_restricted_person_are_refused_and_nothing_is_stored(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    records = pl.DataFrame([{"email": RIA, "first_name": "Ria", "birth_year": 1990}], schema=ATTRIBUTE_SCHEMA)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        result = upsert_attributes(
            unit, records, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
    assert result.rejected == [(0, RejectCode.NO_CONSENT.value)]
    assert count(runtime, SubjectPiiRow, SubjectPiiRow.subject_id == ria) == 0


def test_the_fold_leaves_a_restricted_persons_state_as_it_stands(runtime: Runtime) -> None:
    """Folding the person's stored events again would count each twice: frozen, nothing moves."""
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    before = state_of(runtime, ria)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        fold(unit.session, events_of(unit.session, [ria]), unit.profiles.interests, new_subjects=[])
    assert state_of(runtime, ria) == before


def test_a_build_leaves_a_restricted_persons_state_byte_identical(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, ola = two_people(runtime)
    with runtime.engine.begin() as connection:  # both states go stale: a build would repair both
        connection.execute(text("UPDATE profile_interests SET score = 999.0"))
    before = state_of(runtime, ria)
    assert run_build(runtime, partitions=3).status is BuildStatus.SUCCEEDED
    assert state_of(runtime, ria) == before
    assert scalar(runtime, "SELECT max(score) FROM profile_interests WHERE subject_id = :s", ola) < 999.0


def test_a_withdrawal_while_restricted_keeps_the_state_and_lifting_applies_it(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    before = state_of(runtime, ria)
    record_profiling(runtime, RIA, granted=False)
    assert state_of(runtime, ria) == before
    assert lift_person(runtime, RIA) == 1
    assert state_of(runtime, ria) == {"profile_daily": [], "profile_summary": [], "profile_interests": []}


def test_a_profile_is_not_shown_while_restricted_and_is_again_once_lifted(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)

    def shown() -> bool:
        with runtime.sessions() as session:
            return read_profile(session, ria, config=runtime.profiles, taxonomy=taxonomy, now=NOW) is not None

    assert not shown()
    lift_person(runtime, RIA)
    assert shown()


def test_no_purpose_and_no_partner_reaches_a_restricted_person_until_lifted(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, ola = two_people(runtime)
    with runtime.sessions() as session:
        for purpose in Purpose:
            assert subjects_allowed(session, [ria, ola], purpose) == {ola}
        assert restricted_among(session, [ria, ola]) == {ria}
    lift_person(runtime, RIA)
    with runtime.sessions() as session:
        assert all(subjects_allowed(session, [ria, ola], purpose) == {ria, ola} for purpose in Purpose)


def test_lifting_restores_ingestion_and_the_state_follows_every_event(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, _ola = two_people(runtime)
    ingest(runtime, [visit(RIA, 30)])  # refused while restricted
    assert lift_person(runtime, RIA) == 1
    assert lift_person(runtime, RIA) == 0
    accepted = ingest(runtime, [visit(RIA, 20), visit(RIA, 10, event="purchase", amount=5.0, currency="EUR")])
    assert accepted.accepted == 2
    assert count(runtime, SubjectRestrictionRow, SubjectRestrictionRow.subject_id == ria) == 0
    assert_state_follows_events(runtime)


def test_a_record_refused_while_restricted_stays_refused_when_sent_again_after_lifting(runtime: Runtime) -> None:
    """Refused records are kept as receipts, like every refusal: a resend is a duplicate, not judged anew."""
    runtime = fixed_clock(runtime)
    two_people(runtime)
    record = visit(RIA, 30)
    ingest(runtime, [record])
    lift_person(runtime, RIA)
    assert ingest(runtime, [record]).duplicates == 1


def test_a_merge_keeps_the_person_restricted_and_the_state_kept(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ria, ola = two_people(runtime)
    counted = "SELECT sum(events) FROM profile_daily WHERE subject_id = :s"
    held = scalar(runtime, counted, ria) + scalar(runtime, counted, ola)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:  # the restricted fragment is the loser
        merge_subjects(unit, [(ola, ria)], reason="test")
    with runtime.sessions() as session:
        assert restricted_among(session, [ola]) == {ola}
        assert subjects_allowed(session, [ola], Purpose.ANALYTICS) == set()
    assert sorted(reached(runtime, RIA)) == sorted([ria, ola])
    assert scalar(runtime, counted, ola) == held  # combined onto the survivor, not dropped
    assert [r.code for r in ingest(runtime, [visit(OLA, 5)]).rejected] == [RejectCode.NO_CONSENT]
