"""Consent probed as someone hoping their data gets used anyway: by default, after withdrawal,
through another partner's grant, through an old entry replayed late, or through a merge."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.consent import (
    ConsentEntry,
    ConsentKey,
    ConsentPurpose,
    ConsentStatus,
    LegalBasis,
    PrivacySignal,
    derive_state,
    may_use,
    merged_state,
)
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.consent import service as consent
from server.runtime import Runtime, UnitOfWork
from server.storage.tables import PartnerRow
from server.subjects.service import create_subject

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACME, OTHER = 7, 8
ANALYTICS = ConsentKey(ConsentPurpose.ANALYTICS)
ADVERTISING = ConsentKey(ConsentPurpose.ADVERTISING)
PERSONALIZATION = ConsentKey(ConsentPurpose.PERSONALIZATION)


def new_subject(unit: UnitOfWork) -> int:
    return create_subject(unit.session, identifiers=[], kit=unit.kit, now=T0)


def record(unit: UnitOfWork, subject_id: int, key: ConsentKey, *, granted: bool, at: datetime) -> None:
    consent.record(
        unit.session,
        subject_id=subject_id,
        key=key,
        granted=granted,
        legal_basis=LegalBasis.CONSENT,
        source="cmp-test",
        policy_version="2024-05",
        now=at,
    )


def register_partners(runtime: Runtime) -> None:
    """ACME and OTHER, registered for analytics and advertising (a partner reads only what it declared)."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for partner_id in (ACME, OTHER):
            if unit.session.get(PartnerRow, partner_id) is None:
                purposes = [Purpose.ANALYTICS.value, Purpose.ADVERTISING.value]
                unit.session.add(
                    PartnerRow(id=partner_id, name=f"partner-{partner_id}", purposes=purposes, created_at=T0)
                )


def allowed(runtime: Runtime, subject_id: int, purpose: Purpose, *, partner_id: int | None = None) -> bool:
    with runtime.sessions() as session:
        return subject_id in consent.subjects_allowed(session, [subject_id], purpose, partner_id=partner_id)


def test_no_record_means_no_consent(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        silent, sharing_only = new_subject(unit), new_subject(unit)
        record(unit, sharing_only, ConsentKey(ConsentPurpose.SHARING, ACME), granted=True, at=T0)
    for purpose in Purpose:
        assert not allowed(runtime, silent, purpose)
        assert not allowed(runtime, silent, purpose, partner_id=ACME)
        assert not allowed(runtime, sharing_only, purpose, partner_id=ACME), "sharing alone grants no purpose"


def test_withdrawal_takes_effect_on_the_very_next_check(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        subject = new_subject(unit)
        record(unit, subject, ADVERTISING, granted=True, at=T0)
    assert allowed(runtime, subject, Purpose.ADVERTISING)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        record(unit, subject, ADVERTISING, granted=False, at=T0 + timedelta(seconds=1))
        in_same_transaction = consent.subjects_allowed(unit.session, [subject], Purpose.ADVERTISING)
    assert in_same_transaction == set()
    assert not allowed(runtime, subject, Purpose.ADVERTISING)


@pytest.mark.parametrize("signal", list(PrivacySignal))
def test_gpc_and_objection_withdraw_advertising_only(runtime: Runtime, signal: PrivacySignal) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        subject = new_subject(unit)
        for key in (ANALYTICS, ADVERTISING, PERSONALIZATION, ConsentKey(ConsentPurpose.PROFILING)):
            record(unit, subject, key, granted=True, at=T0)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        consent.record_signal(
            unit.session, subject_id=subject, signal=signal, source="browser", now=T0 + timedelta(minutes=1)
        )
    assert not allowed(runtime, subject, Purpose.ADVERTISING)
    assert all(allowed(runtime, subject, p) for p in (Purpose.ANALYTICS, Purpose.PERSONALIZATION, Purpose.PROFILING))
    with runtime.sessions() as session:
        [entry] = [e for e in consent.history(session, subject) if not e.granted]
    assert (entry.key, entry.policy_version) == (ADVERTISING, signal.value)


def test_a_partner_needs_the_sharing_consent_that_names_it(runtime: Runtime) -> None:
    register_partners(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        shared_with_acme, shared_with_other, withdrawn = new_subject(unit), new_subject(unit), new_subject(unit)
        for subject in (shared_with_acme, shared_with_other, withdrawn):
            record(unit, subject, ANALYTICS, granted=True, at=T0)
        record(unit, shared_with_acme, ConsentKey(ConsentPurpose.SHARING, ACME), granted=True, at=T0)
        record(unit, shared_with_other, ConsentKey(ConsentPurpose.SHARING, OTHER), granted=True, at=T0)
        record(unit, withdrawn, ConsentKey(ConsentPurpose.SHARING, ACME), granted=True, at=T0)
        record(unit, withdrawn, ConsentKey(ConsentPurpose.SHARING, ACME), granted=False, at=T0 + timedelta(hours=1))
    everyone = [shared_with_acme, shared_with_other, withdrawn]
    with runtime.sessions() as session:
        assert consent.subjects_allowed(session, everyone, Purpose.ANALYTICS, partner_id=ACME) == {shared_with_acme}
        assert consent.subjects_allowed(session, everyone, Purpose.ANALYTICS, partner_id=OTHER) == {shared_with_other}
        assert consent.subjects_allowed(session, everyone, Purpose.ADVERTISING, partner_id=ACME) == set()
        assert consent.subjects_allowed(session, everyone, Purpose.ANALYTICS) == set(everyone)


def test_an_older_entry_appended_later_does_not_override_a_newer_state(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        granted, withdrawn = new_subject(unit), new_subject(unit)
        record(unit, granted, ADVERTISING, granted=True, at=T0)
        record(unit, withdrawn, ADVERTISING, granted=False, at=T0)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:  # a late delivery from an offline source
        record(unit, granted, ADVERTISING, granted=False, at=T0 - timedelta(days=1))
        record(unit, withdrawn, ADVERTISING, granted=True, at=T0 - timedelta(days=1))
    assert allowed(runtime, granted, Purpose.ADVERTISING)
    assert not allowed(runtime, withdrawn, Purpose.ADVERTISING)
    with runtime.sessions() as session:
        assert consent.current_state(session, granted) == {ADVERTISING: ConsentStatus(True, T0)}
        assert len(consent.history(session, granted)) == 2, "the late entry is still in the ledger"


KEYS = [ANALYTICS, ADVERTISING, ConsentKey(ConsentPurpose.SHARING, ACME), ConsentKey(ConsentPurpose.SHARING, OTHER)]
ENTRIES = st.lists(
    st.tuples(st.sampled_from(KEYS), st.booleans(), st.integers(min_value=0, max_value=4)), min_size=1, max_size=10
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, in_one_batch=st.booleans())
def test_the_state_table_is_always_derived_from_the_ledger(
    runtime: Runtime, entries: list[tuple[ConsentKey, bool, int]], in_one_batch: bool
) -> None:
    """Any order, ties included, appended one by one or in one batch: state == derive_state(ledger)."""
    ledger = [
        ConsentEntry(key, granted, LegalBasis.CONSENT, "cmp-test", "2024-05", T0 + timedelta(minutes=minute))
        for key, granted, minute in entries
    ]
    register_partners(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        subject = new_subject(unit)
        if in_one_batch:
            consent.record_many(unit.session, [(subject, entry) for entry in ledger])
        else:
            for entry in ledger:
                consent.record_many(unit.session, [(subject, entry)])
    with runtime.sessions() as session:
        state = consent.current_state(session, subject)
        assert state == derive_state(consent.history(session, subject))
        assert state == derive_state(ledger)
        for purpose in (Purpose.ANALYTICS, Purpose.ADVERTISING):
            for partner_id in (None, ACME, OTHER):
                expected = may_use(state, purpose, partner_id=partner_id)
                found = consent.subjects_allowed(session, [subject], purpose, partner_id=partner_id)
                assert found == ({subject} if expected else set())


# --- merge: two subjects found to be one person ----------------------------------------------


def status(granted: bool, minutes: int) -> ConsentStatus:
    return ConsentStatus(granted, T0 + timedelta(minutes=minutes))


def test_merge_most_restrictive_wins() -> None:
    merged = merged_state({ADVERTISING: status(True, 1)}, {ADVERTISING: status(False, 5)})
    assert merged == {ADVERTISING: status(False, 5)}
    assert not may_use(merged, Purpose.ADVERTISING)


def test_merge_a_later_explicit_grant_wins() -> None:
    merged = merged_state({ADVERTISING: status(False, 1)}, {ADVERTISING: status(True, 5)})
    assert merged == {ADVERTISING: status(True, 5)}


def test_merge_a_grant_at_the_same_time_as_a_withdrawal_loses() -> None:
    assert merged_state({ANALYTICS: status(True, 3)}, {ANALYTICS: status(False, 3)}) == {ANALYTICS: status(False, 3)}


def test_merge_a_purpose_one_side_never_granted_is_not_granted() -> None:
    merged = merged_state({ANALYTICS: status(True, 1), ADVERTISING: status(True, 1)}, {ANALYTICS: status(True, 2)})
    assert merged[ANALYTICS] == status(True, 2)
    assert not merged[ADVERTISING].granted
    assert not may_use(merged, Purpose.ADVERTISING)


def test_merge_is_symmetric_and_never_grants_what_neither_side_had() -> None:
    first = {ANALYTICS: status(True, 1), ConsentKey(ConsentPurpose.SHARING, ACME): status(False, 2)}
    second = {ANALYTICS: status(False, 3), ConsentKey(ConsentPurpose.SHARING, ACME): status(True, 4)}
    merged = merged_state(first, second)
    assert merged == merged_state(second, first)
    assert merged == {ANALYTICS: status(False, 3), ConsentKey(ConsentPurpose.SHARING, ACME): status(True, 4)}
    assert PERSONALIZATION not in merged


def test_a_merge_of_three_does_not_depend_on_which_side_is_listed_first() -> None:
    """Two at a time, a side that never granted turned into a dated withdrawal that a third
    side's later grant outranked — or did not, had the sides come in another order."""
    never: dict[ConsentKey, ConsentStatus] = {}
    early, late = {ANALYTICS: status(True, 1)}, {ANALYTICS: status(True, 5)}
    expected = {ANALYTICS: status(False, 5)}
    for order in itertools.permutations([never, early, late]):
        assert merged_state(*order) == expected


STATES = st.dictionaries(
    st.sampled_from(KEYS), st.builds(status, st.booleans(), st.integers(min_value=0, max_value=3)), max_size=4
)


@given(sides=st.lists(STATES, min_size=2, max_size=4), data=st.data())
def test_a_merged_state_is_the_same_whichever_subject_survives(
    sides: list[dict[ConsentKey, ConsentStatus]], data: st.DataObject
) -> None:
    """Which side is the merge's winner (ids are random) changes no grant and no date."""
    merged = merged_state(*sides)
    assert merged_state(*data.draw(st.permutations(sides))) == merged
    for key, result in merged.items():
        present = [side[key] for side in sides if key in side]
        assert result.since == max(s.since for s in present), "dated by the latest statement it merges"
        if result.granted:
            assert len(present) == len(sides), "a purpose one side never granted is not granted"
            assert all(s.granted or s.since < result.since for s in present), "no withdrawal at or after it"
