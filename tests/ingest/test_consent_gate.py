"""The consent gate as a person relying on it sees it: nothing kept without a grant, a grant and a
withdrawal recorded where they change something, a withdrawal that holds from the very next batch,
ad events only with advertising, and a partner's event that grants sharing with that partner."""

from __future__ import annotations

from datetime import timedelta

import pytest

from privacy.consent import ConsentKey, ConsentPurpose, ConsentStatus, LegalBasis
from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent import service as consent
from server.consent.requests import RawIdentifier, record_consent
from server.ingest.service import RejectedRecord
from server.ingest.vocabulary import RejectCode
from server.runtime import Runtime
from server.storage.tables import EventRow
from tests.ingest.batches import NOW, add_partner, count, event, fixed_clock, footprint, ingest, subject_of

T1, T2, T3 = NOW - timedelta(minutes=30), NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
ANALYTICS = ConsentKey(ConsentPurpose.ANALYTICS)
ADVERTISING = ConsentKey(ConsentPurpose.ADVERTISING)


@pytest.fixture
def clocked(runtime: Runtime) -> Runtime:
    return fixed_clock(runtime)


def state_of(runtime: Runtime, subject_id: int) -> dict[ConsentKey, ConsentStatus]:
    with runtime.sessions() as session:
        return consent.current_state(session, subject_id)


def granted(runtime: Runtime, subject_id: int) -> set[ConsentKey]:
    return {key for key, status in state_of(runtime, subject_id).items() if status.granted}


def device_subject(runtime: Runtime, device: str) -> int:
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, device)
    assert subject is not None
    return subject


def test_no_statement_and_an_unknown_person_is_no_consent_and_creates_nothing(clocked: Runtime) -> None:
    result = ingest(clocked, [event(anonymous_id="stranger", email="stranger@example.org", consent_purposes=None)])
    assert result.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]
    assert (result.accepted, result.new_subjects) == (0, 0)
    assert footprint(clocked) == (0, 0, 0)


def test_a_statement_granting_analytics_is_stored_with_its_grant_in_the_ledger(clocked: Runtime) -> None:
    result = ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics"], timestamp=T1)])
    assert result.accepted == 1
    subject = device_subject(clocked, "dev-1")
    with clocked.sessions() as session:
        [entry] = consent.history(session, subject)
    assert (entry.key, entry.granted, entry.legal_basis) == (ANALYTICS, True, LegalBasis.CONSENT)
    assert (entry.source, entry.recorded_at) == ("event:web-test", T1)
    assert granted(clocked, subject) == {ANALYTICS}


def test_a_statement_granting_every_purpose_records_each_grant_once(clocked: Runtime) -> None:
    everything = [purpose.value for purpose in Purpose]
    ingest(
        clocked,
        [
            event(anonymous_id="dev-1", consent_purposes=everything, timestamp=T1),
            event(anonymous_id="dev-1", consent_purposes=everything, timestamp=T2),
        ],
    )
    subject = device_subject(clocked, "dev-1")
    with clocked.sessions() as session:
        entries = consent.history(session, subject)
    assert sorted((e.key.purpose.value, e.granted, e.recorded_at) for e in entries) == [
        (purpose, True, T1) for purpose in sorted(everything)
    ]


def test_a_later_event_with_gpc_withdraws_advertising_in_the_ledger(clocked: Runtime) -> None:
    ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics", "advertising"], timestamp=T1)])
    subject = device_subject(clocked, "dev-1")
    assert granted(clocked, subject) == {ANALYTICS, ADVERTISING}
    result = ingest(
        clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics", "advertising"], gpc=True, timestamp=T2)]
    )
    assert result.accepted == 1, "analytics still holds"
    assert state_of(clocked, subject)[ADVERTISING] == ConsentStatus(False, T2)
    with clocked.sessions() as session:
        withdrawals = [e for e in consent.history(session, subject) if not e.granted]
    assert [(e.key, e.recorded_at) for e in withdrawals] == [(ADVERTISING, T2)]


def test_gpc_without_a_purposes_list_still_withdraws_advertising(clocked: Runtime) -> None:
    ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics", "advertising"], timestamp=T1)])
    subject = device_subject(clocked, "dev-1")
    ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=None, gpc=True, timestamp=T2)])
    assert ADVERTISING not in granted(clocked, subject)


def test_a_later_empty_statement_is_refused_and_withdraws_but_keeps_earlier_events(clocked: Runtime) -> None:
    ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics"], timestamp=T1)])
    subject = device_subject(clocked, "dev-1")
    result = ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=[], timestamp=T2)])
    assert result.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]
    assert state_of(clocked, subject) == {ANALYTICS: ConsentStatus(False, T2)}
    assert count(clocked, EventRow, EventRow.subject_id == subject) == 1, "the earlier event stays"


def test_an_ad_event_needs_advertising(clocked: Runtime) -> None:
    result = ingest(
        clocked,
        [
            event(anonymous_id="dev-ads", event="ad_click", channel="ads", consent_purposes=["advertising"]),
            event(anonymous_id="dev-view", event="page_view", consent_purposes=["advertising"]),
            event(anonymous_id="dev-none", event="ad_impression", channel="ads", consent_purposes=[]),
        ],
    )
    assert result.rejected == [RejectedRecord(1, RejectCode.NO_CONSENT), RejectedRecord(2, RejectCode.NO_CONSENT)]
    assert result.accepted == 1


def test_an_ad_event_without_advertising_is_refused_even_with_analytics(clocked: Runtime) -> None:
    ad_click = event(anonymous_id="dev-1", event="ad_click", channel="ads", consent_purposes=["analytics"])
    result = ingest(clocked, [ad_click])
    assert result.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]


def test_a_known_subject_without_statement_uses_its_state_and_a_withdrawal_holds_next_batch(clocked: Runtime) -> None:
    ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=["analytics"], timestamp=T1)])
    subject = device_subject(clocked, "dev-1")
    assert ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=None, timestamp=T2)]).accepted == 1
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        record_consent(
            unit,
            identifier=RawIdentifier(IdentifierKind.DEVICE_ID, "dev-1"),
            purpose=ConsentPurpose.ANALYTICS,
            partner_id=None,
            granted=False,
            legal_basis=LegalBasis.CONSENT,
            source="cmp-test",
            policy_version="2024-06",
        )
    refused = ingest(clocked, [event(anonymous_id="dev-1", consent_purposes=None, timestamp=T3)])
    assert refused.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]
    assert count(clocked, EventRow, EventRow.subject_id == subject) == 2


def test_a_partner_event_grants_only_sharing_with_that_partner(clocked: Runtime) -> None:
    """A partner speaks for sharing with itself, never for the person's own purposes."""
    acme = add_partner(clocked, "acme")
    other = add_partner(clocked, "other-media")
    ingest(clocked, [event(email="ana@example.org", consent_purposes=["analytics"])])
    from_acme = event(
        partner="acme",
        email="ana@example.org",
        partner_user_id="pu-1",
        channel="partner",
        consent_purposes=["analytics", "advertising"],
    )
    result = ingest(clocked, [from_acme])
    assert result.accepted == 1
    subject = subject_of(clocked, IdentifierKind.PARTNER_USER_ID, "pu-1", partner_id=acme)
    assert subject is not None
    assert granted(clocked, subject) == {ANALYTICS, ConsentKey(ConsentPurpose.SHARING, acme)}
    assert ConsentKey(ConsentPurpose.SHARING, other) not in state_of(clocked, subject)
    with clocked.sessions() as session:
        assert consent.subjects_allowed(session, [subject], Purpose.ANALYTICS, partner_id=acme) == {subject}
        assert consent.subjects_allowed(session, [subject], Purpose.ANALYTICS, partner_id=other) == set()


def test_a_new_persons_withdrawal_later_in_the_same_batch_is_kept(clocked: Runtime) -> None:
    result = ingest(
        clocked,
        [
            event(anonymous_id="dev-1", consent_purposes=["analytics"], timestamp=T1),
            event(anonymous_id="dev-1", consent_purposes=[], timestamp=T2),
        ],
    )
    assert result.rejected == [RejectedRecord(1, RejectCode.NO_CONSENT)]
    assert granted(clocked, device_subject(clocked, "dev-1")) == set(), "her last word was a withdrawal"


def test_an_event_stamped_a_little_ahead_cannot_outrank_a_later_withdrawal(runtime: Runtime) -> None:
    ingest(fixed_clock(runtime), [event(anonymous_id="dev-1", timestamp=NOW + timedelta(minutes=4))])
    with fixed_clock(runtime, NOW + timedelta(minutes=1)).unit_of_work(SYSTEM_ACTOR) as unit:
        record_consent(
            unit,
            identifier=RawIdentifier(IdentifierKind.DEVICE_ID, "dev-1"),
            purpose=ConsentPurpose.ANALYTICS,
            partner_id=None,
            granted=False,
            legal_basis=LegalBasis.CONSENT,
            source="cmp-test",
            policy_version="2024-06",
        )
    after = ingest(
        fixed_clock(runtime, NOW + timedelta(minutes=2)), [event(anonymous_id="dev-1", consent_purposes=None)]
    )
    assert after.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]


def test_a_partner_onboards_on_its_own_attested_consent_but_never_moves_own_purposes(clocked: Runtime) -> None:
    acme = add_partner(clocked, "acme")
    onboarded = ingest(clocked, [event(partner="acme", email="new@example.org", consent_purposes=["analytics"])])
    assert onboarded.accepted == 1
    newcomer = subject_of(clocked, IdentifierKind.EMAIL, "new@example.org")
    assert newcomer is not None
    assert granted(clocked, newcomer) == {ConsentKey(ConsentPurpose.SHARING, acme)}, "only sharing is recorded"
    ingest(clocked, [event(email="ana@example.org", consent_purposes=["analytics"])])
    subject = subject_of(clocked, IdentifierKind.EMAIL, "ana@example.org")
    assert subject is not None
    ingest(clocked, [event(partner="acme", email="ana@example.org", consent_purposes=[])])
    assert ANALYTICS in granted(clocked, subject), "a partner's empty statement withdrew the person's own consent"
    refused = ingest(clocked, [event(partner="acme", email="other@example.org", consent_purposes=[])])
    assert refused.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]


def test_an_old_statement_arriving_late_does_not_override_a_newer_withdrawal(clocked: Runtime) -> None:
    ingest(clocked, [event(anonymous_id="dev-9", consent_purposes=["analytics"], timestamp=NOW - timedelta(hours=2))])
    ingest(clocked, [event(anonymous_id="dev-9", consent_purposes=[], timestamp=NOW - timedelta(minutes=5))])
    late = ingest(
        clocked, [event(anonymous_id="dev-9", consent_purposes=["analytics"], timestamp=NOW - timedelta(minutes=30))]
    )
    assert late.rejected == [RejectedRecord(0, RejectCode.NO_CONSENT)]
