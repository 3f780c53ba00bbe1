"""``auditEntries`` over a real server: a Relay connection the compliance role pages both ways,
by person, action and time, whose refusals and own audit entry never repeat what was sent."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.auth.principal import SYSTEM_ACTOR, Role
from tests.support.live_server import LiveServer

ENTRIES = """
query($subject: IdentifierInput, $targets: [String!], $actions: [String!], $since: DateTime, $until: DateTime,
      $first: Int, $after: String, $last: Int, $before: String) {
  auditEntries(subject: $subject, targets: $targets, actions: $actions, since: $since, until: $until,
               first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { seq at action target actorRole details { key value } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    errors { field code message }
  }
}"""
RECORD = """
mutation($input: RecordConsentInput!) { recordConsent(input: $input) { recorded errors { code } } }"""
EMPTY = {
    "edges": [],
    "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
    "errors": [],
}


def entries(server: LiveServer, token: str, **variables: Any) -> dict[str, Any]:
    body = server.graphql(ENTRIES, token=token, variables=variables).json()
    assert "errors" not in body, body
    connection: dict[str, Any] = body["data"]["auditEntries"]
    return connection


def seed(server: LiveServer, count: int) -> tuple[str, list[int]]:
    """``count`` entries of an action no other test uses, one minute apart: (action, seqs)."""
    action = f"probe.{secrets.token_hex(4)}"
    times = iter(datetime(2026, 4, 1, tzinfo=UTC) + timedelta(minutes=index) for index in range(count))
    with replace(server.runtime, clock=lambda: next(times)).unit_of_work(SYSTEM_ACTOR) as unit:
        made = [unit.audit(action, target=f"probe:{index}", details={"n": index}) for index in range(count)]
    return action, [entry.seq for entry in made]


def node_seqs(connection: dict[str, Any]) -> list[int]:
    return [edge["node"]["seq"] for edge in connection["edges"]]


def test_pages_forward_and_backward_cover_every_entry_once(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    action, expected = seed(live_server, 7)
    forward: list[int] = []
    after = None
    while True:
        page = entries(live_server, token, actions=[action], first=3, after=after)
        forward.extend(node_seqs(page))
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert forward == expected
    backward: list[list[int]] = []
    before = None
    while True:
        page = entries(live_server, token, actions=[action], last=3, before=before)
        backward.insert(0, node_seqs(page))
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backward == [expected[:1], expected[1:4], expected[4:]]


def test_time_range_and_targets_narrow(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    action, expected = seed(live_server, 6)
    since, until = "2026-04-01T00:02:00Z", "2026-04-01T02:04:00+02:00"
    window = entries(live_server, token, actions=[action], since=since, until=until)
    assert node_seqs(window) == expected[2:4]
    targeted = entries(live_server, token, actions=[action], targets=["probe:1", "probe:5"])
    assert [edge["node"]["target"] for edge in targeted["edges"]] == ["probe:1", "probe:5"]


def test_a_cursor_of_one_search_carries_nothing_into_another(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    first_action, _ = seed(live_server, 3)
    second_action, second = seed(live_server, 2)
    page = entries(live_server, token, actions=[first_action], first=1)
    other = entries(live_server, token, actions=[second_action], after=page["pageInfo"]["endCursor"])
    assert node_seqs(other) == second
    assert {edge["node"]["action"] for edge in other["edges"]} == {second_action}


def consent_input(email: str) -> dict[str, Any]:
    return {
        "input": {
            "identifier": {"kind": "EMAIL", "value": email},
            "purpose": "ANALYTICS",
            "granted": True,
            "source": "cmp:web",
            "policyVersion": "2026-10",
        }
    }


def test_by_subject_and_the_unknown_person_answered_alike(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    email = f"search.{secrets.token_hex(3)}@example.org"
    other = f"other.{secrets.token_hex(3)}@example.org"
    for person in (email, other, email):
        assert live_server.graphql(RECORD, token=token, variables=consent_input(person)).json()["data"]
    found = entries(live_server, token, subject={"kind": "EMAIL", "value": email.upper()})
    assert [edge["node"]["action"] for edge in found["edges"]] == ["consent.grant", "consent.grant"]
    assert len({edge["node"]["target"] for edge in found["edges"]}) == 1

    known_without = entries(live_server, token, subject={"kind": "EMAIL", "value": email}, actions=["erasure.start"])
    unknown = entries(live_server, token, subject={"kind": "EMAIL", "value": f"never.{secrets.token_hex(3)}@x.org"})
    assert known_without == unknown == EMPTY


@pytest.mark.parametrize(
    ("variables", "field", "code"),
    [
        ({"subject": {"kind": "EMAIL", "value": "secret.person.at.example.org"}}, "subject", "INVALID_EMAIL"),
        ({"subject": {"kind": "PHONE", "value": "secret-555-0199"}}, "subject", "INVALID_PHONE"),
        ({"after": "secret-person-cursor"}, "after", "INVALID_CURSOR"),
        ({"before": "YXVkaXQ6MDE="}, "before", "INVALID_CURSOR"),  # "audit:01": not one we issued
        ({"since": "2026-05-02T00:00:00Z", "until": "2026-05-01T00:00:00Z"}, "since", "TIME_RANGE"),
        ({"since": "2026-05-01T00:00:00"}, "since", "TIME_ZONE_REQUIRED"),
        ({"first": 1001}, "first", "PAGE_SIZE"),
        ({"first": 1, "last": 1}, "last", "FIRST_AND_LAST"),
    ],
)
def test_bad_arguments_are_domain_errors_that_echo_nothing(
    live_server: LiveServer, variables: dict[str, Any], field: str, code: str
) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    response = live_server.graphql(ENTRIES, token=token, variables=variables)
    connection = response.json()["data"]["auditEntries"]
    assert connection["edges"] == []
    assert [(error["field"], error["code"]) for error in connection["errors"]] == [(field, code)]
    assert "secret" not in response.text
    assert "YXVkaXQ6MDE" not in response.text


@pytest.mark.parametrize("role", [role for role in Role if role is not Role.COMPLIANCE], ids=str)
def test_only_the_compliance_role_may_search(live_server: LiveServer, role: Role) -> None:
    token = live_server.issue_key(role)
    body = live_server.graphql(ENTRIES, token=token, variables={"first": 1}).json()
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]


def test_the_search_is_audited_without_the_identifier(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    email = f"audited.search.{secrets.token_hex(3)}@example.org"
    entries(live_server, token, subject={"kind": "EMAIL", "value": email}, actions=[email], first=2)
    [last] = entries(live_server, token, actions=["audit.search"], last=1)["edges"]
    details = {detail["key"]: detail["value"] for detail in last["node"]["details"]}
    assert (details["subject_kind"], details["actions"], details["first"]) == ("email", "1", "2")
    assert last["node"]["target"] is None
    everything = live_server.graphql(ENTRIES, token=token, variables={"actions": ["audit.search"], "last": 1000})
    assert email not in everything.text
    assert email not in live_server.log_text()
