"""The profile reads as an attacker probes them, over a real server, on HTTP and on a WebSocket.

Who may read what (DESIGN, invariant 7): a profile is for compliance and admin; build history and
data quality for analysts and admin; nobody else reaches any of them, however the field is asked
for (aliases, fragments, a socket). What a null answer says (docs/profiles.md): nothing; an
unknown, malformed, unconsenting, stateless or withdrawn person reads exactly alike, headers
included, and no identifier reaches a log line. What a withdrawal does (invariant 3): the very
next read on every transport is null, and a build started after it does not bring it back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import Role
from server.storage.tables import ProfileDailyRow, ProfileInterestRow, ProfileSummaryRow
from server.subjects.service import find_subject
from tests.http.test_attributes_api import UPSERT
from tests.profiles.test_build_surfaces import follow
from tests.profiles.test_profile_api import INGEST, sent
from tests.support.live_server import LiveServer
from tests.support.websocket import Outcome, TransportSocket, transport_socket

PROFILE = """
query($i: IdentifierInput!) {
  a: profile(identifier: $i) { ...everything }
  b: profile(identifier: $i) { ... on Profile { asOf botLike interests { topic counts { type events } } } }
}
fragment everything on Profile {
  asOf lifecycleStage valueTier botLike deviceCount identifierCount ageBand region
  recency { daysSinceLastEvent daysSinceLastPurchase }
  frequency { events { lifetime } purchases { lifetime } }
  monetary { revenueLifetime }
  channelMix { channel share }
  repeatPurchases { frequency }
  interests { topic score raw lastSeen counts { type events } }
}"""
BUILDS = """
query { runs: profileBuilds(first: 5) { ...run } one: profileBuild(id: 1) { ...run } }
fragment run on ProfileBuild { id status subjects { value suppressed } errorMessage }"""
CUT_POINTS = """
query { runs: profileBuilds(first: 5) { ...cut } }
fragment cut on ProfileBuild { id cutPoints { high low buyers } }"""
QUALITY = "{ q: dataQuality { source rows botLikeSubjects { value } ingested { newSubjects { value suppressed } } } }"
RECORD_CONSENT = """
mutation($email: String!, $granted: Boolean!) {
  recordConsent(input: {identifier: {kind: EMAIL, value: $email}, purpose: PROFILING, granted: $granted,
                        source: "cmp:web", policyVersion: "v1"}) { recorded errors { code } }
}"""

ROOTS = {"profile": PROFILE, "builds": BUILDS, "cut_points": CUT_POINTS, "quality": QUALITY}
ALLOWED = {
    "profile": {Role.COMPLIANCE, Role.ADMIN},
    "builds": {Role.ANALYST, Role.ADMIN},
    "cut_points": {Role.ADMIN},  # a quantile of buyers' revenue is one buyer's revenue
    "quality": {Role.ANALYST, Role.ADMIN},
}


def email_identifier(email: str) -> dict[str, Any]:
    return {"i": {"kind": "EMAIL", "value": email}}


def new_email(label: str) -> str:
    return f"{label}.{secrets.token_hex(4)}@example.org"


def ingest_as_admin(server: LiveServer, events: list[dict[str, Any]]) -> None:
    body = server.graphql(INGEST, token=server.issue_key(Role.ADMIN), variables={"batch": {"events": events}}).json()
    assert body["data"]["ingestEvents"]["accepted"] == len(events), body


def profiled_person(server: LiveServer) -> str:
    email = new_email("probe")
    ingest_as_admin(server, [sent(email, hours_ago=3), sent(email, hours_ago=2, type="click")])
    return email


def state_rows(server: LiveServer, email: str) -> int:
    with server.runtime.sessions() as session:
        subject = find_subject(session, normalize(IdentifierKind.EMAIL, email), server.runtime.kit)
        assert subject is not None
        return sum(
            session.query(model).filter(model.subject_id == subject).count()
            for model in (ProfileDailyRow, ProfileSummaryRow, ProfileInterestRow)
        )


@pytest.fixture
def anyone_profiled(live_server: LiveServer) -> str:
    return profiled_person(live_server)


def by_http(server: LiveServer, token: str, query: str, variables: dict[str, Any] | None) -> dict[str, Any]:
    return dict(server.graphql(query, token=token, variables=variables).json())


@pytest.fixture
def socket_of(live_server: LiveServer) -> Iterator[dict[Role, TransportSocket]]:
    """One open graphql-transport-ws socket per role."""
    opened: dict[Role, TransportSocket] = {}
    contexts = []
    try:
        for role in Role:
            context = transport_socket(live_server, live_server.issue_key(role))
            opened[role] = context.__enter__()
            contexts.append(context)
        yield opened
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


def as_body(outcome: Outcome) -> dict[str, Any]:
    """A socket's answer in the shape of an HTTP body (one ``next`` payload, or the error list)."""
    if outcome.errors:
        return {"errors": outcome.errors}
    [payload] = outcome.payloads
    return dict(payload)


def assert_forbidden(body: dict[str, Any], query: str) -> None:
    assert {error["extensions"]["code"] for error in body["errors"]} == {"FORBIDDEN"}, body
    assert all(value is None for value in (body.get("data") or {}).values()), body


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
def test_each_role_reaches_exactly_its_profile_fields_by_alias_and_fragment_on_http_and_socket(
    live_server: LiveServer, socket_of: dict[Role, TransportSocket], anyone_profiled: str, role: Role
) -> None:
    token = live_server.issue_key(role)
    for name, query in ROOTS.items():
        variables = email_identifier(anyone_profiled) if name == "profile" else None
        http = by_http(live_server, token, query, variables)
        socket = as_body(socket_of[role].run(query, variables=variables))
        for body in (http, socket):
            if role in ALLOWED[name]:
                assert "errors" not in body, (name, body)
            elif name == "cut_points" and role in ALLOWED["builds"]:  # the builds, without their cut points
                # (with no build yet nothing is resolved, so nothing is refused: test_build_surfaces
                # reads a real build's cut points as an analyst)
                runs = body["data"]["runs"]
                refused = {error["extensions"]["code"] for error in body.get("errors", [])}
                assert refused == ({"FORBIDDEN"} if runs else set()), body
                assert all(run["cutPoints"] is None for run in runs), body
            else:
                assert_forbidden(body, query)
                assert anyone_profiled not in str(body)


def test_a_batch_of_operations_in_one_request_is_refused_not_answered(
    live_server: LiveServer, anyone_profiled: str
) -> None:
    """An analyst slips a profile read into a JSON array beside a field it may read."""
    response = httpx.post(
        f"{live_server.base_url}/graphql",
        json=[{"query": QUALITY}, {"query": PROFILE, "variables": email_identifier(anyone_profiled)}],
        headers={"authorization": f"Bearer {live_server.issue_key(Role.ANALYST)}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "lifecycleStage" not in response.text
    assert '"asOf"' not in response.text


NULL_HEADERS_THAT_DIFFER = {"date", "x-request-id"}


def null_answers(
    server: LiveServer, token: str, socket: TransportSocket, identifiers: list[dict[str, Any]]
) -> list[Any]:
    answers = []
    for identifier in identifiers:
        variables = {"i": identifier}
        response = server.graphql(PROFILE, token=token, variables=variables)
        headers = {k: v for k, v in response.headers.items() if k not in NULL_HEADERS_THAT_DIFFER}
        answers.append(
            (response.status_code, headers, response.json(), as_body(socket.run(PROFILE, variables=variables)))
        )
    return answers


def test_nobody_to_show_reads_exactly_alike_on_http_and_socket_and_logs_no_identifier(
    live_server: LiveServer, socket_of: dict[Role, TransportSocket]
) -> None:
    compliance = live_server.issue_key(Role.COMPLIANCE)
    unconsenting, stateless, withdrawn = new_email("unconsenting"), new_email("stateless"), profiled_person(live_server)
    unconsenting_event = sent(unconsenting, hours_ago=1)
    unconsenting_event["context"]["consent"] = {"purposes": ["analytics"]}
    ingest_as_admin(live_server, [unconsenting_event])
    for email, granted in ((stateless, True), (withdrawn, False)):
        body = live_server.graphql(RECORD_CONSENT, token=compliance, variables={"email": email, "granted": granted})
        assert body.json()["data"]["recordConsent"] == {"recorded": True, "errors": []}
    declared = {"email": stateless, "birthYear": 1990, "region": "FR-IDF"}  # traits, but still no event
    upserted = live_server.graphql(
        UPSERT, token=live_server.issue_key(Role.ADMIN), variables={"batch": {"records": [declared]}}
    )
    assert upserted.json()["data"]["upsertAttributes"]["accepted"] == 1, upserted.json()
    partner = live_server.new_partner().id
    phone = "+33 6 12 34 56 78"
    identifiers: list[dict[str, Any]] = [
        {"kind": "EMAIL", "value": new_email("unknown")},
        {"kind": "EMAIL", "value": unconsenting},
        {"kind": "EMAIL", "value": stateless},
        {"kind": "EMAIL", "value": withdrawn},
        {"kind": "EMAIL", "value": "not an email at all"},
        {"kind": "PHONE", "value": phone},
        {"kind": "PARTNER_USER_ID", "value": "partner-user-probe"},
        {"kind": "PARTNER_USER_ID", "value": "partner-user-probe", "partnerId": partner},
        {"kind": "PARTNER_USER_ID", "value": "partner-user-probe", "partnerId": 987654321},
    ]

    answers = null_answers(live_server, compliance, socket_of[Role.COMPLIANCE], identifiers)

    assert answers[0][2] == {"data": {"a": None, "b": None}}
    assert answers[0][3] == answers[0][2]
    assert all(answer == answers[0] for answer in answers), answers
    log = live_server.log_text()
    for identifier in identifiers:
        assert identifier["value"] not in log
    assert "33612345678" not in log


def test_a_withdrawal_over_http_empties_the_next_read_on_an_open_socket_and_no_build_brings_it_back(
    live_server: LiveServer, socket_of: dict[Role, TransportSocket]
) -> None:
    email = profiled_person(live_server)
    compliance, admin = live_server.issue_key(Role.COMPLIANCE), live_server.issue_key(Role.ADMIN)
    socket = socket_of[Role.COMPLIANCE]
    variables = email_identifier(email)
    for _repeat in range(2):  # a first read and a repeat: nothing answers from a cache
        assert as_body(socket.run(PROFILE, variables=variables))["data"]["a"]["frequency"]["events"]["lifetime"] == 2
    assert state_rows(live_server, email) > 0

    withdrawal = live_server.graphql(RECORD_CONSENT, token=compliance, variables={"email": email, "granted": False})
    assert withdrawal.json()["data"]["recordConsent"]["recorded"] is True

    for _repeat in range(2):
        assert as_body(socket.run(PROFILE, variables=variables)) == {"data": {"a": None, "b": None}}
        assert by_http(live_server, admin, PROFILE, variables) == {"data": {"a": None, "b": None}}
    assert state_rows(live_server, email) == 0
    started = live_server.graphql(
        "mutation { startProfileBuild(partitions: 2) { build { id } errors { code } } }", token=admin
    ).json()["data"]["startProfileBuild"]
    assert started["errors"] == [], started
    assert follow(live_server, admin, started["build"]["id"])[-1]["status"] == "SUCCEEDED"
    assert state_rows(live_server, email) == 0
    assert as_body(socket.run(PROFILE, variables=variables)) == {"data": {"a": None, "b": None}}
