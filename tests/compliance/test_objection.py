"""Objection (Art. 21): advertising stops on the very next query, for partners too; nothing else moves."""

from __future__ import annotations

from privacy.consent import ConsentKey, ConsentPurpose, LegalBasis, PrivacySignal
from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent.objection import object_to_advertising
from server.consent.service import history, record, subjects_allowed
from server.partners.service import create_partner
from server.runtime import Runtime
from tests.compliance.people import reached, visit
from tests.ingest.batches import NOW, fixed_clock, ingest, subject_of

OTTO = "otto.objects@example.org"
PIA = "pia.stays@example.org"


def test_an_objection_stops_advertising_at_once_and_leaves_other_purposes(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit(OTTO, 30), visit(PIA, 30)])
    otto, pia = subject_of(runtime, IdentifierKind.EMAIL, OTTO), subject_of(runtime, IdentifierKind.EMAIL, PIA)
    assert otto is not None
    assert pia is not None
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        assert object_to_advertising(unit, reached(runtime, OTTO), request_id=3) == 1
        # the very next query, in the same transaction
        assert subjects_allowed(unit.session, [otto, pia], Purpose.ADVERTISING) == {pia}
    with runtime.sessions() as session:
        assert subjects_allowed(session, [otto, pia], Purpose.ADVERTISING) == {pia}
        for purpose in (Purpose.ANALYTICS, Purpose.PERSONALIZATION, Purpose.PROFILING):
            assert subjects_allowed(session, [otto, pia], purpose) == {otto, pia}
        last = history(session, otto)[-1]
    assert (last.key.purpose, last.granted, last.policy_version, last.source) == (
        ConsentPurpose.ADVERTISING,
        False,
        PrivacySignal.OBJECTION.value,
        "request:3",
    )


def test_no_partner_reaches_an_objector_for_advertising(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit(OTTO, 30)])
    otto = subject_of(runtime, IdentifierKind.EMAIL, OTTO)
    assert otto is not None
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner_id = create_partner(unit.session, name="adpartner", purposes=[Purpose.ADVERTISING], now=NOW).id
        record(
            unit.session,
            subject_id=otto,
            key=ConsentKey(ConsentPurpose.SHARING, partner_id),
            granted=True,
            legal_basis=LegalBasis.CONSENT,
            source="cmp:web",
            policy_version="v1",
            now=NOW,
        )
    with runtime.sessions() as session:
        assert subjects_allowed(session, [otto], Purpose.ADVERTISING, partner_id=partner_id) == {otto}
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        object_to_advertising(unit, [otto], request_id=None)
    with runtime.sessions() as session:
        assert subjects_allowed(session, [otto], Purpose.ADVERTISING, partner_id=partner_id) == set()


def test_an_objection_for_an_unknown_or_merged_away_subject_records_nothing(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        assert object_to_advertising(unit, [12345], request_id=1) == 0
