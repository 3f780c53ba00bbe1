"""Validation as a careless or hostile sender meets it: one broken rule per record, anything at all
in any field, topics and labels that carry free text, and placeholder identifiers shared by
strangers. A rejected record names its rule, never its value, and leaves nothing behind."""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.ingest.records import EVENT_SCHEMA, conform
from server.ingest.service import RejectedRecord, ingest_events
from server.ingest.setup import guardrails_from, validation_context
from server.ingest.vocabulary import RejectCode
from server.runtime import Runtime
from server.storage.tables import EventRow, IdentityRow
from tests.ingest.batches import NOW, SOURCE, add_partner, event, fixed_clock, footprint, frame, ingest, subject_of

# Codes given by the gate after validation, or by the caller (a record it could not read, a batch too large).
NOT_FROM_VALIDATION = {
    RejectCode.SUPPRESSED,
    RejectCode.NO_CONSENT,
    RejectCode.AMBIGUOUS_IDENTITY,
    RejectCode.TOO_LARGE,
    RejectCode.INVALID_RECORD,
}
BAD_DEVICE = "device-of-the-bad-record"

# (code, the fields that break the rule, the bad value that must never be echoed): one per code
BROKEN: list[tuple[RejectCode, dict[str, Any], str | None]] = [
    (RejectCode.INVALID_MESSAGE_ID, {"message_id": "has spaces inside"}, "has spaces inside"),
    (RejectCode.UNKNOWN_EVENT_TYPE, {"event": "teleported"}, "teleported"),
    (RejectCode.UNKNOWN_CHANNEL, {"channel": "carrier-pigeon"}, "carrier-pigeon"),
    (RejectCode.INVALID_TIMESTAMP, {"timestamp": None}, None),
    (RejectCode.FUTURE_TIMESTAMP, {"timestamp": NOW + timedelta(hours=2)}, "2024-06-01T14"),
    (RejectCode.TOO_OLD, {"timestamp": NOW - timedelta(days=401)}, "2023-04-27"),
    (RejectCode.INVALID_EMAIL, {"email": "ana.lima.at.example.org"}, "ana.lima.at.example.org"),
    (RejectCode.INVALID_PHONE, {"phone": "+49 30 1234 ANA"}, "1234 ANA"),
    (RejectCode.INVALID_DEVICE_ID, {"anonymous_id": "device with spaces", "user_id": "cust-bad"}, "device with spaces"),
    (RejectCode.INVALID_CUSTOMER_ID, {"user_id": "cust\x00ana"}, "cust\x00ana"),
    (RejectCode.INVALID_PARTNER_USER_ID, {"partner": "acme", "partner_user_id": "pu\u200bana"}, "pu\u200bana"),
    (RejectCode.UNKNOWN_PARTNER, {"partner": "nobody-media", "partner_user_id": "pu-1"}, "nobody-media"),
    (RejectCode.NO_IDENTIFIER, {"anonymous_id": None}, None),
    (RejectCode.INVALID_AMOUNT, {"amount": -12.5, "currency": "EUR"}, "-12.5"),
    (RejectCode.INVALID_CURRENCY, {"amount": 12.5, "currency": "euro"}, "euro"),
    (RejectCode.UNKNOWN_PURPOSE, {"consent_purposes": ["analytics", "mind-reading"]}, "mind-reading"),
    # acme declared analytics only; an ad event serves advertising only
    (RejectCode.PURPOSE_NOT_DECLARED, {"partner": "acme", "event": "ad_click", "channel": "ads"}, None),
]
# Other ways to break the same rules, checked together in one batch.
VARIANTS: list[tuple[RejectCode, dict[str, Any]]] = [
    (RejectCode.INVALID_MESSAGE_ID, {"message_id": None}),
    (RejectCode.INVALID_MESSAGE_ID, {"message_id": "x" * 129}),
    (RejectCode.INVALID_PARTNER_USER_ID, {"partner_user_id": "pu-without-partner"}),
    (RejectCode.INVALID_AMOUNT, {"amount": float("nan"), "currency": "EUR"}),
    (RejectCode.INVALID_AMOUNT, {"amount": float("inf"), "currency": "EUR"}),
    (RejectCode.INVALID_AMOUNT, {"amount": 12.5}),
    (RejectCode.INVALID_CURRENCY, {"currency": "EUR "}),
    (RejectCode.UNKNOWN_PURPOSE, {"consent_purposes": ["Analytics"]}),
    (RejectCode.INVALID_EMAIL, {"email": ""}),
    (RejectCode.INVALID_DEVICE_ID, {"anonymous_id": "   "}),
]


@pytest.fixture
def clocked(runtime: Runtime) -> Runtime:
    return fixed_clock(runtime)


def test_every_validation_code_has_a_case() -> None:
    assert {code for code, _fields, _value in BROKEN} == set(RejectCode) - NOT_FROM_VALIDATION


@pytest.mark.parametrize(("code", "fields", "bad_value"), BROKEN, ids=[code.value for code, _f, _v in BROKEN])
def test_a_broken_record_is_rejected_alone_and_leaves_nothing(
    clocked: Runtime, code: RejectCode, fields: dict[str, Any], bad_value: str | None
) -> None:
    add_partner(clocked, "acme")
    bad = event(**{"anonymous_id": BAD_DEVICE, **fields})
    result = ingest(clocked, [event(anonymous_id="good-1"), bad, event(anonymous_id="good-2")])

    assert result.rejected == [RejectedRecord(index=1, code=code)]
    assert (result.received, result.accepted, result.duplicates) == (3, 2, 0)
    assert footprint(clocked) == (2, 2, 2), "only the two good records created anything"
    assert subject_of(clocked, IdentifierKind.DEVICE_ID, BAD_DEVICE) is None
    assert subject_of(clocked, IdentifierKind.CUSTOMER_ID, "cust-bad") is None
    message = result.rejected[0].message
    assert message
    if bad_value is not None:
        assert bad_value.lower() not in message.lower()
        assert bad_value not in repr(result)


def test_other_ways_to_break_a_rule_in_one_batch(clocked: Runtime) -> None:
    records = [event(**{"anonymous_id": f"dev-{n}", **fields}) for n, (_code, fields) in enumerate(VARIANTS)]
    result = ingest(clocked, [*records, event(anonymous_id="good")])
    assert result.rejected == [RejectedRecord(n, code) for n, (code, _fields) in enumerate(VARIANTS)]
    assert result.accepted == 1
    assert footprint(clocked) == (1, 1, 1)


def test_a_record_the_caller_could_not_read_is_rejected_as_invalid_record(clocked: Runtime) -> None:
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        result = ingest_events(
            unit,
            frame([event(anonymous_id="good-1"), event(anonymous_id="unreadable"), event(anonymous_id="good-2")]),
            source=SOURCE,
            context=validation_context(unit.session, clocked.settings, unit.kit, now=NOW),
            guardrails=guardrails_from(clocked.settings),
            malformed=[1],
        )
    assert result.rejected == [RejectedRecord(1, RejectCode.INVALID_RECORD)]
    assert footprint(clocked) == (2, 2, 2)
    assert subject_of(clocked, IdentifierKind.DEVICE_ID, "unreadable") is None


def test_the_first_broken_rule_decides_the_code(clocked: Runtime) -> None:
    result = ingest(clocked, [event(event="teleported", channel="carrier-pigeon", email="not-an-email")])
    assert result.rejected == [RejectedRecord(0, RejectCode.UNKNOWN_EVENT_TYPE)]


def test_validation_context_knows_the_registered_partners(clocked: Runtime) -> None:
    acme = add_partner(clocked, "acme")
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        context = validation_context(unit.session, clocked.settings, unit.kit, now=NOW)
    assert context.partner_ids == {"acme": acme}


# --- anything at all, in every field ---------------------------------------------------------

PLAUSIBLE: dict[str, list[str]] = {
    "message_id": ["m-1", "m-2", "m-3", "x" * 129],
    "event": ["page_view", "purchase", "ad_click", "Page_View"],
    "channel": ["web", "app", "partner", "WEB"],
    "timestamp": ["2024-06-01T11:59:00Z", "2024-06-01T11:00:00+02:00", "2024-06-01 11:59", "2099-01-01T00:00:00Z"],
    "user_id": ["cust-1", "0", "guest", " cust-1 "],
    "anonymous_id": ["dev-1", "00000000-0000-0000-0000-000000000000", "DEV-1", "d e v"],
    "email": ["ana@example.org", "ANA@example.org", "test@test.com", "ana@"],
    "phone": ["+49 30 123456", "030 123456", "+1", "12"],
    "partner": ["acme", "nobody"],
    "partner_user_id": ["pu-1", "pu\u200b1"],
    "topics": ["sports", "sports;nope", "", ";"],
    "category": ["Sports", "sports/boxing", "no such category"],
    "amount": ["12.5", "-1", "nan", "inf", "1e400", "abc"],
    "currency": ["EUR", "eur", "EURO"],
    "campaign": ["summer-2024", "Summer sale for Ana!", ""],
    "region": ["DE-BE", "Ana's street 5, Berlin"],
    "consent_purposes": ["analytics", "analytics;advertising", "", "analytics;mind-reading", "ANALYTICS"],
    "gpc": ["true", "false", "1", "maybe"],
}
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=16)
FIELD = {name: st.one_of(st.none(), ANY_TEXT, st.sampled_from(values)) for name, values in PLAUSIBLE.items()}
RECORDS = st.lists(st.fixed_dictionaries(FIELD), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=RECORDS)
def test_any_text_in_any_field_is_accepted_or_rejected_with_a_known_code(
    clocked: Runtime, records: list[dict[str, str | None]]
) -> None:
    """The CSV path: every field arrives as text and is conformed to the event schema first."""
    raw = pl.DataFrame(records, schema=dict.fromkeys(PLAUSIBLE, pl.String), orient="row")
    events = conform(raw.lazy()).collect()
    with clocked.unit_of_work(SYSTEM_ACTOR) as unit:
        result = ingest_events(
            unit,
            events,
            source=SOURCE,
            context=validation_context(unit.session, clocked.settings, unit.kit, now=NOW),
            guardrails=guardrails_from(clocked.settings),
        )
    indexes = [r.index for r in result.rejected]
    assert result.received == len(records)
    assert result.accepted + result.duplicates + len(result.rejected) == result.received
    assert len(set(indexes)) == len(indexes)
    assert all(
        0 <= i < len(records) and isinstance(r.code, RejectCode) and r.message
        for i, r in zip(indexes, result.rejected, strict=True)
    )


def test_conform_gives_the_event_schema() -> None:
    assert conform(pl.DataFrame({"message_id": ["m"]}).lazy()).collect().schema == EVENT_SCHEMA


# --- what is dropped from an accepted record --------------------------------------------------


def test_unknown_topics_are_dropped_and_counted_never_stored(clocked: Runtime) -> None:
    result = ingest(
        clocked,
        [
            event(anonymous_id="dev-1", topics=["sports/boxing", "ana-lima-fan-club"], category="Travel"),
            event(anonymous_id="dev-2", category="my secret diary"),
        ],
    )
    assert (result.accepted, result.dropped_topics) == (2, 2)
    with clocked.sessions() as session:
        stored = dict(session.execute(select(EventRow.message_key, EventRow.topics)).all())
    assert sorted(stored.values(), key=str) == [None, "sports/boxing;travel"]
    assert "ana-lima-fan-club" not in repr(stored)


def test_free_text_campaign_and_region_are_dropped_and_counted(clocked: Runtime) -> None:
    result = ingest(
        clocked,
        [
            event(anonymous_id="dev-1", campaign="Summer sale for Ana Lima!", region="Ana's street 5, Berlin"),
            event(anonymous_id="dev-2", campaign="summer-2024", region="DE-BE"),
        ],
    )
    assert (result.accepted, result.dropped_labels) == (2, 2)
    with clocked.sessions() as session:
        stored = set(session.execute(select(EventRow.campaign, EventRow.region)).all())
    # A campaign nobody declared (AUDIENCE_LABEL_VOCABULARY) is kept as its keyed hash, never as written.
    assert stored == {(None, None), (clocked.kit.labels.kept("summer-2024"), "DE-BE")}
    assert "summer-2024" not in repr(stored)


def test_junk_identifiers_are_dropped_counted_and_link_nobody(clocked: Runtime) -> None:
    zero_device = "00000000-0000-0000-0000-000000000000"
    result = ingest(
        clocked,
        [
            event(email="test@test.com", user_id="cust-ana"),
            event(email=" TEST@test.com", user_id="cust-ben"),
            event(anonymous_id=zero_device, user_id="cust-cy"),
            event(anonymous_id=zero_device, user_id="cust-dee"),
            event(email="test@test.com"),
        ],
    )
    assert result.junk_identifiers == 5
    assert result.rejected == [RejectedRecord(4, RejectCode.NO_IDENTIFIER)], "nothing usable is left of it"
    assert (result.accepted, result.merges, result.new_subjects) == (4, 0, 4)
    customers = ("cust-ana", "cust-ben", "cust-cy", "cust-dee")
    people = {subject_of(clocked, IdentifierKind.CUSTOMER_ID, customer) for customer in customers}
    assert None not in people
    assert len(people) == 4, "four people, not fused by a shared placeholder"
    assert footprint(clocked) == (4, 4, 4)
    with clocked.sessions() as session:
        kinds = set(session.scalars(select(IdentityRow.kind)))
    assert kinds == {IdentifierKind.CUSTOMER_ID.value}
    assert subject_of(clocked, IdentifierKind.EMAIL, "test@test.com") is None


def test_a_record_left_without_identifiers_by_junk_is_no_identifier(clocked: Runtime) -> None:
    result = ingest(clocked, [event(anonymous_id=string.digits[0] * 16, user_id="guest")])
    assert result.rejected == [RejectedRecord(0, RejectCode.NO_IDENTIFIER)]
    assert footprint(clocked) == (0, 0, 0)
