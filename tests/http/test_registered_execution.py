"""A registered document run straight on graphql-core answers exactly as its text does through Strawberry.

The attacker here is a partner hoping the short path (``schema.registered_execution``) skips what
the other one does: a field's permission, the error policy (no sent value echoed), the counting
that operators watch. Each test asks the same thing by text and by id and compares the answers.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from privacy.purposes import Purpose
from schema import build_schema, registered_execution
from schema.context import Context
from schema.trusted_documents.lookup import requested_document
from server.auth.principal import SYSTEM_ACTOR, Principal, Role
from server.http.registered_requests import registered_request
from server.partners import service as partners
from server.runtime import Runtime
from server.trusted_documents import service as trusted_documents
from tests.http.test_trusted_documents import document_id, partner_key, register, run_by_id
from tests.partners.visitors import VISITOR, Decaying, partner_app, visible_person
from tests.support.live_server import LiveServer

LOOKUP = VISITOR.replace("query(", "query Lookup(", 1)
MINE = "query Mine { viewer { role } }"


def by_text(server: LiveServer, token: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = server.graphql(LOOKUP, token=token, variables=variables).json()
    return answer


def by_id(server: LiveServer, token: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = run_by_id(server, token, document_id(LOOKUP), variables=variables).json()
    return answer


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without ``asOf``; scores, which decay between the two asks, within 1e-4 (``Decaying``)."""
    visitor = (answer.get("data") or {}).get("visitor")
    if visitor is None:
        return {"errors": answer.get("errors"), "visitor": None}
    interests = [{**i, "score": Decaying(i["score"])} for i in visitor["interests"]]
    return {"errors": answer.get("errors"), "segments": visitor["segments"], "interests": interests}


def test_the_visitor_lookup_by_id_answers_as_by_text(live_server: LiveServer) -> None:
    partner = partner_app(live_server, Purpose.ANALYTICS, Purpose.PERSONALIZATION)
    seen = visible_person(live_server, partner)
    register(live_server, partner.token, LOOKUP)
    asked: list[dict[str, Any]] = [
        {"kind": "PARTNER_USER_ID", "value": seen.person.user_ids[partner.id]},
        {"kind": "DEVICE_ID", "value": seen.person.devices[partner.id], "k": 2},
        {"kind": "EMAIL", "value": seen.person.email},  # ours, not its own: answered as unknown
        {"kind": "PARTNER_USER_ID", "value": "u-nobody"},
    ]
    answers = [(by_text(live_server, partner.token, v), by_id(live_server, partner.token, v)) for v in asked]
    for text, registered in answers:
        assert comparable(registered) == comparable(text)
    assert answers[0][1]["data"]["visitor"]["segments"] == [{"name": seen.grant.segment, "purpose": "PERSONALIZATION"}]
    assert len(answers[1][1]["data"]["visitor"]["interests"]) == 2
    assert answers[3][1]["data"]["visitor"]["segments"] == []


def test_errors_are_the_same_and_echo_nothing_sent(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    register(live_server, partner.token, LOOKUP)
    secret = "probe-secret-1234@example.org"
    asked: list[dict[str, Any]] = [
        {"kind": "PARTNER_USER_ID", "value": secret, "k": 11},  # out of range, raised by the resolver
        {"kind": "NOT_A_KIND", "value": secret},  # refused while coercing the variables
        {"kind": "EMAIL"},  # a required variable missing
    ]
    for variables in asked:
        text, registered = by_text(live_server, partner.token, variables), by_id(live_server, partner.token, variables)
        assert registered == text
        assert registered["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert secret not in str(registered)


def test_a_field_refused_to_the_role_is_refused_by_id_too(live_server: LiveServer) -> None:
    admin = live_server.issue_key(Role.ADMIN)
    analyst = live_server.issue_key(Role.ANALYST)
    register(live_server, admin, LOOKUP)  # global: any key may name it
    variables = {"kind": "PARTNER_USER_ID", "value": "u-1"}
    for token in (analyst, admin):
        registered = by_id(live_server, token, variables)
        assert registered == by_text(live_server, token, variables)
        assert [e["extensions"]["code"] for e in registered["errors"]] == ["FORBIDDEN"]
        assert registered["data"] is None


def operations_counted(server: LiveServer, name: str, outcome: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics").text
    found = re.search(rf'audience_graphql_operations_total{{operation="{name}",outcome="{outcome}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_operations_by_id_are_counted_and_logged(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    register(live_server, partner.token, LOOKUP)
    ok_before = operations_counted(live_server, "Lookup", "ok")
    error_before = operations_counted(live_server, "Lookup", "error")
    for _ in range(3):
        by_id(live_server, partner.token, {"kind": "PARTNER_USER_ID", "value": "u-1"})
    by_id(live_server, partner.token, {"kind": "PARTNER_USER_ID", "value": "u-1", "k": 99})
    assert operations_counted(live_server, "Lookup", "ok") == ok_before + 3
    assert operations_counted(live_server, "Lookup", "error") == error_before + 1
    marker = "registered-log-0001"
    httpx.post(
        f"{live_server.base_url}/graphql",
        json={"documentId": document_id(LOOKUP), "variables": {"kind": "DEVICE_ID", "value": "d-1"}},
        headers={"authorization": f"Bearer {partner.token}", "x-request-id": marker},
    )
    [line] = live_server.log_lines_containing(marker)
    assert '"operation":"Lookup"' in line
    assert '"role":"partner"' in line
    assert '"outcome":"ok"' in line


def test_a_key_revoked_over_graphql_is_refused_at_once_though_just_verified(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    register(live_server, token, LOOKUP)
    assert by_id(live_server, token, {"kind": "DEVICE_ID", "value": "d-1"})["data"]["visitor"]["segments"] == []
    admin = live_server.issue_key(Role.ADMIN)
    key_id = token.split("_", 1)[1].split(".", 1)[0]
    live_server.graphql(f'mutation {{ revokeApiKey(keyId: "{key_id}") {{ revoked }} }}', token=admin)
    refused = run_by_id(live_server, token, document_id(LOOKUP), variables={"kind": "DEVICE_ID", "value": "d-1"})
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_the_short_path_runs_what_strawberry_runs(runtime: Runtime) -> None:
    """In process, so that it is this path that answers (over HTTP both paths look alike, by design)."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        partner = partners.create_partner(
            unit.session, name="short-path", purposes=(Purpose.ANALYTICS,), now=unit.clock()
        )
        trusted_documents.register_documents(
            unit.session, texts=[LOOKUP], partner_id=None, registered_by=None, now=unit.clock()
        )
        trusted_documents.register_documents(
            unit.session, texts=[MINE], partner_id=partner.id, registered_by=None, now=unit.clock()
        )
    schema = build_schema(runtime.settings)
    variables = {"kind": "PARTNER_USER_ID", "value": "u-1"}
    request = registered_request(f'{{"documentId": "{document_id(LOOKUP)}", "variables": {{}}}}'.encode())
    assert request is not None
    assert request.document == requested_document({"documentId": document_id(LOOKUP)})
    for role in (Role.PARTNER, Role.ANALYST):
        context = Context(
            runtime=runtime, principal=Principal("k", role, partner.id, frozenset({"analytics"})), request_id="r"
        )
        direct = _run(schema, context, request, variables)
        assert direct is not None
        through_strawberry = _strawberry(schema, context, variables)
        assert direct.errors is None or [e.formatted for e in direct.errors] == [
            e.formatted for e in through_strawberry.errors or []
        ]
        assert (direct.data is None) == (through_strawberry.data is None)
    mine = registered_request(f'{{"documentId": "{document_id(MINE)}"}}'.encode())
    stranger = Context(runtime=runtime, principal=Principal("k", Role.PARTNER, partner.id + 1), request_id="r")
    assert _run(schema, stranger, mine, {}) is None  # another partner's document: left to Strawberry


def _run(schema: Any, context: Context, request: Any, variables: dict[str, Any]) -> Any:
    return asyncio.run(
        registered_execution.run(schema, request.document, context=context, variables=variables, operation_name=None)
    )


def _strawberry(schema: Any, context: Context, variables: dict[str, Any]) -> Any:
    return asyncio.run(schema.execute(LOOKUP, variable_values=variables, context_value=context))
