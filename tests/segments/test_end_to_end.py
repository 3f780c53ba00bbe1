"""The whole flow over HTTP with a key for every role: a marketer defines and grants a segment, a
partner's own event makes a consenting person enter it, and the partner sees the enter in its
feed; the person's consent withdrawal and an erasure show up as exits, and the lookup forgets an
erased person at once. Each role stays on its side."""

from __future__ import annotations

from typing import Any

from privacy.purposes import Purpose
from server.auth.principal import Role
from tests.partners.visitors import (
    PartnerApp,
    Person,
    carry_out,
    changes_page,
    known_person,
    lookup,
    partner_app,
    record_consent,
    send,
    sent_by,
)
from tests.segments.marketing import (
    CREATE,
    GRANT,
    Cohort,
    created,
    eventually,
    fresh_day,
    granted_id,
    page_view,
    partner_name,
    unique,
)
from tests.support.live_server import LiveServer


def _feed(server: LiveServer, partner: PartnerApp, after: str | None) -> dict[str, Any]:
    return changes_page(server, partner.token, after=after)


def _entries(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["node"]["kind"], e["node"]["segment"]) for e in page["edges"]]


def _next_entries(server: LiveServer, partner: PartnerApp, after: str | None) -> dict[str, Any]:
    """The feed after ``after``, polled until something is there (or a generous deadline passes)."""
    return eventually(lambda: _feed(server, partner, after), lambda page: bool(page["edges"]))


def _visit_on(server: LiveServer, partner: PartnerApp, person: Person, day: Cohort) -> None:
    """The partner sends a page view of ``person`` (by its own user id) dated on the segment's day."""
    event = page_view(person.email, day.day, userId=person.user_ids[partner.id])
    event["context"] = {"consent": {"purposes": ["personalization"]}}
    send(server, partner.token, [event])


def test_a_partner_sees_a_person_enter_in_real_time_and_leave_on_withdrawal_or_erasure(
    marketing_server: LiveServer,
) -> None:
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    partner = partner_app(server, Purpose.PERSONALIZATION)
    visitors = [sent_by(server, partner, known_person(server)) for _ in range(2)]
    day = Cohort(day=fresh_day(), people=[])
    segment = created(server, marketer, unique("visited"), ruleText=day.rule_text)["name"]
    granted_id(server, marketer, segment, partner_name(server, partner.id), "PERSONALIZATION")
    start = _feed(server, partner, None)
    assert start["edges"] == []
    cursor = start["pageInfo"]["endCursor"]

    _visit_on(server, partner, visitors[0], day)
    entered = _next_entries(server, partner, cursor)
    assert _entries(entered) == [("ENTER", segment)]
    pseudonym = entered["edges"][0]["node"]["pseudonym"]
    user_id = visitors[0].user_ids[partner.id]
    assert lookup(server, partner, "PARTNER_USER_ID", user_id)["segments"] == [
        {"name": segment, "purpose": "PERSONALIZATION"}
    ]

    record_consent(server, visitors[0], "PERSONALIZATION", granted=False)
    left = _next_entries(server, partner, entered["pageInfo"]["endCursor"])
    assert [(e["node"]["kind"], e["node"]["pseudonym"]) for e in left["edges"]] == [("EXIT", pseudonym)]
    assert lookup(server, partner, "PARTNER_USER_ID", user_id)["segments"] == []

    _visit_on(server, partner, visitors[1], day)
    second = _next_entries(server, partner, left["pageInfo"]["endCursor"])
    assert _entries(second) == [("ENTER", segment)]
    carry_out(server, "ERASURE", visitors[1])
    erased_id = visitors[1].user_ids[partner.id]
    unknown = lookup(server, partner, "PARTNER_USER_ID", f"never-sent-{erased_id}")
    assert {k: v for k, v in lookup(server, partner, "PARTNER_USER_ID", erased_id).items() if k != "asOf"} == {
        k: v for k, v in unknown.items() if k != "asOf"
    }
    gone = _next_entries(server, partner, second["pageInfo"]["endCursor"])
    assert [(e["node"]["kind"], e["node"]["pseudonym"]) for e in gone["edges"]] == [
        ("EXIT", second["edges"][0]["node"]["pseudonym"])
    ]


FORBIDDEN_READS = {
    "members": '{ segmentMembers(segment: "any", first: 1) { errors { code } } }',
    "visitor": '{ visitor(identifier: {kind: EMAIL, value: "a@example.org"}) { asOf } }',
}


def _codes(server: LiveServer, token: str, document: str, **variables: Any) -> list[str]:
    body = server.graphql(document, token=token, variables=variables).json()
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def test_each_role_stays_on_its_side(marketing_server: LiveServer) -> None:
    server = marketing_server
    marketer, analyst = server.issue_key(Role.MARKETER), server.issue_key(Role.ANALYST)
    partner = partner_app(server, Purpose.ADVERTISING)
    segment = created(server, marketer, unique("roles"), ruleText="purchases_90d >= 1")["name"]
    granted_id(server, marketer, segment, partner_name(server, partner.id), "ADVERTISING")

    for name, document in FORBIDDEN_READS.items():
        assert _codes(server, marketer, document) == ["FORBIDDEN"], name
    create = {"name": unique("nope"), "ruleText": "purchases_90d >= 1"}
    for token in (analyst, partner.token):
        assert _codes(server, token, CREATE, **create) == ["FORBIDDEN"]
    grant = {"segment": segment, "partner": partner_name(server, partner.id), "purpose": "ANALYTICS"}
    assert _codes(server, analyst, GRANT, **grant) == ["FORBIDDEN"]
    assert _codes(server, partner.token, GRANT, **grant) == ["FORBIDDEN"]
    members = '{ segmentMembers(segment: "%s", first: 1) { errors { code } } }' % segment  # noqa: UP031
    assert _codes(server, partner.token, members) == []
