"""Suppression probed as an erased person's identifiers coming back: in another spelling, in bulk,
or after a consent that only lifts the one identifier it was given for."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.storage.tables import SuppressionRow
from server.subjects.service import create_subject
from server.suppression import service as suppression

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def erase_identifiers(runtime: Runtime, *raw_identifiers: tuple[IdentifierKind, str]) -> int:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        identifiers = [normalize(kind, raw, rules=unit.kit.rules) for kind, raw in raw_identifiers]
        subject = create_subject(unit.session, identifiers=identifiers, kit=unit.kit, now=NOW)
        assert suppression.suppress_subject_identifiers(unit.session, subject, NOW) == len(identifiers)
    return subject


def test_a_suppressed_email_matches_in_any_spelling(runtime: Runtime) -> None:
    erase_identifiers(runtime, (IdentifierKind.EMAIL, "ana.lima@example.org"))
    with runtime.sessions() as session:
        for spelling in ("ana.lima@example.org", "  Ana.Lima@EXAMPLE.org\t", "\u00a0ANA.LIMA@example.ORG"):
            assert suppression.is_suppressed(session, normalize(IdentifierKind.EMAIL, spelling), runtime.kit)
        assert not suppression.is_suppressed(
            session, normalize(IdentifierKind.EMAIL, "ana.lima@example.com"), runtime.kit
        )
        assert not suppression.is_suppressed(
            session, normalize(IdentifierKind.CUSTOMER_ID, "ana.lima@example.org"), runtime.kit
        ), "another kind with the same text is another identifier"


def test_suppressing_twice_keeps_one_entry(runtime: Runtime) -> None:
    subject = erase_identifiers(runtime, (IdentifierKind.EMAIL, "ana@example.org"))
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        suppression.suppress_subject_identifiers(unit.session, subject, NOW)
        suppression.suppress(unit.session, normalize(IdentifierKind.EMAIL, "ANA@example.org"), unit.kit, NOW)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SuppressionRow)) == 1


def test_explicit_consent_lifts_suppression_for_that_identifier_only(runtime: Runtime) -> None:
    erase_identifiers(runtime, (IdentifierKind.EMAIL, "ben@example.org"), (IdentifierKind.PHONE, "+49 30 123456"))
    ben_email = normalize(IdentifierKind.EMAIL, " Ben@Example.org")
    ben_phone = normalize(IdentifierKind.PHONE, "+4930123456")
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        assert suppression.lift(unit.session, ben_email, unit.kit)
    with runtime.sessions() as session:
        assert not suppression.is_suppressed(session, ben_email, runtime.kit)
        assert suppression.is_suppressed(session, ben_phone, runtime.kit), "the phone was not part of that consent"
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        assert not suppression.lift(unit.session, ben_email, unit.kit), "nothing left to lift"


def test_the_gate_bulk_check_returns_exactly_the_suppressed_digests(runtime: Runtime) -> None:
    erased = [f"erased{n}@example.org" for n in range(3)]
    kept = [f"kept{n}@example.org" for n in range(4)]
    for address in erased:
        erase_identifiers(runtime, (IdentifierKind.EMAIL, address))
    pseudonymizer = runtime.kit.pseudonymizer
    digest = {a: pseudonymizer.pseudonym(normalize(IdentifierKind.EMAIL, a)).digest for a in erased + kept}
    incoming = [digest[a] for a in [*kept, *erased, erased[0]]]
    with runtime.sessions() as session:
        hits = suppression.suppressed_among(session, IdentifierKind.EMAIL, pseudonymizer.current_version, incoming)
        assert hits == {digest[a] for a in erased}
        assert (
            suppression.suppressed_among(session, IdentifierKind.PHONE, pseudonymizer.current_version, incoming)
            == set()
        )
        assert suppression.suppressed_among(session, IdentifierKind.EMAIL, pseudonymizer.current_version, []) == set()
