"""Suppression at the gate, probed as an erased person's email coming back in another spelling,
and as the same person consenting anew."""

from __future__ import annotations

import pytest

from privacy.consent import ConsentPurpose, LegalBasis
from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.consent.requests import RawIdentifier, record_consent
from server.ingest.service import RejectedRecord
from server.ingest.vocabulary import RejectCode
from server.runtime import Runtime
from server.storage.tables import EventRow
from server.suppression.service import suppress_subject_identifiers
from tests.ingest.batches import count, event, fixed_clock, footprint, ingest, subject_of


@pytest.fixture
def clocked(runtime: Runtime) -> Runtime:
    return fixed_clock(runtime)


def suppressed_ana(runtime: Runtime) -> int:
    ingest(runtime, [event(email="ana.lima@example.org")])
    subject = subject_of(runtime, IdentifierKind.EMAIL, "ana.lima@example.org")
    assert subject is not None
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        assert suppress_subject_identifiers(unit.session, subject, unit.clock()) == 1
    return subject


@pytest.mark.parametrize("spelling", ["ana.lima@example.org", "  Ana.Lima@EXAMPLE.org\t", "ANA.LIMA@example.ORG"])
def test_a_suppressed_email_in_any_spelling_is_rejected_and_creates_nothing(clocked: Runtime, spelling: str) -> None:
    suppressed_ana(clocked)
    before = footprint(clocked)
    result = ingest(
        clocked,
        [event(anonymous_id="someone-else"), event(email=spelling, anonymous_id="ana-new-phone", user_id="cust-ana")],
    )
    assert result.rejected == [RejectedRecord(1, RejectCode.SUPPRESSED)]
    assert result.accepted == 1
    assert footprint(clocked) == (before[0] + 1, before[1] + 1, before[2] + 1), "only the other record landed"
    assert subject_of(clocked, IdentifierKind.DEVICE_ID, "ana-new-phone") is None, "nothing of hers is linked"
    assert subject_of(clocked, IdentifierKind.CUSTOMER_ID, "cust-ana") is None
    assert spelling.strip() not in result.rejected[0].message


def test_a_new_explicit_consent_lifts_suppression_and_the_record_lands(clocked: Runtime) -> None:
    subject = suppressed_ana(clocked)
    assert ingest(clocked, [event(email="Ana.Lima@example.org")]).rejected[0].code is RejectCode.SUPPRESSED
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        outcome = record_consent(
            unit,
            identifier=RawIdentifier(IdentifierKind.EMAIL, " ANA.LIMA@example.org"),
            purpose=ConsentPurpose.ANALYTICS,
            partner_id=None,
            granted=True,
            legal_basis=LegalBasis.CONSENT,
            source="cmp-test",
            policy_version="2024-06",
        )
    assert outcome.suppression_lifted
    result = ingest(clocked, [event(email="Ana.Lima@example.org", consent_purposes=None)])
    assert (result.accepted, result.rejected) == (1, [])
    assert count(clocked, EventRow, EventRow.subject_id == subject) == 2, "lands on her subject, under her consent"
