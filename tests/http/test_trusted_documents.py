"""Trusted documents over HTTP and WebSocket with real keys: registered once, run by id, scoped to their owner.

The attacker here is a partner probing for other partners' registered operations, or hoping a
registered document gets past the permission on a field: a foreign document answers exactly like
an unknown one, and a registered document runs with every field's permission checked as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from privacy.keyring import Keyring
from server.auth.principal import Role
from server.storage.tables import AuditEntryRow, TrustedDocumentRow
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with
from tests.support.websocket import transport_socket

REGISTER = (
    "mutation Register($documents: [String!]!) {"
    " registerDocuments(documents: $documents) { ids errors { field code message } } }"
)
REGISTER_FOR = (
    "mutation Register($documents: [String!]!, $partnerId: Int) {"
    " registerDocuments(documents: $documents, partnerId: $partnerId) { ids errors { field code } } }"
)
WHO = "query Who { viewer { role partnerId } }"
ADMIN_ONLY = "query Partners { partners { id } }"


def document_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def register(server: LiveServer, token: str, *documents: str, partner_id: int | None = None) -> dict[str, Any]:
    variables: dict[str, Any] = {"documents": list(documents)}
    query = REGISTER
    if partner_id is not None:
        query, variables["partnerId"] = REGISTER_FOR, partner_id
    body = server.graphql(query, token=token, variables=variables).json()
    assert body.get("errors") is None, body
    payload: dict[str, Any] = body["data"]["registerDocuments"]
    return payload


def run_by_id(server: LiveServer, token: str, identifier: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/graphql",
        json={"documentId": identifier, **body},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def partner_key(server: LiveServer) -> tuple[str, int]:
    partner = server.new_partner()
    return server.issue_key(Role.PARTNER, partner_id=partner.id), partner.id


def test_a_registered_document_answers_as_its_text_does(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    assert register(live_server, token, WHO) == {"ids": [document_id(WHO)], "errors": []}
    by_text = live_server.graphql(WHO, token=token).json()
    assert run_by_id(live_server, token, document_id(WHO)).json() == by_text
    apollo = {"persistedQuery": {"version": 1, "sha256Hash": document_id(WHO).removeprefix("sha256:")}}
    assert live_server.graphql(None, token=token, extensions=apollo).json() == by_text  # type: ignore[arg-type]
    assert by_text["data"]["viewer"]["role"] == "PARTNER"


def test_registering_again_changes_nothing_and_is_audited(live_server: LiveServer) -> None:
    token, partner_id = partner_key(live_server)
    text = "query Again { viewer { keyId } }"
    first = register(live_server, token, text, text)
    assert first == register(live_server, token, text) | {"ids": [document_id(text)] * 2}
    with live_server.runtime.sessions() as session:
        row = session.get(TrustedDocumentRow, document_id(text).removeprefix("sha256:"))
        audited = session.scalars(
            select(AuditEntryRow.details)
            .where(
                AuditEntryRow.action == "trusted_documents.register", AuditEntryRow.target == f"partner:{partner_id}"
            )
            .order_by(AuditEntryRow.seq)
        ).all()
    assert row is not None
    assert row.document == text
    assert row.partner_id == partner_id
    assert [details["count"] for details in audited] == [2, 1]


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("query { viewer { noSuchField } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query { viewer { role }", "GRAPHQL_PARSE_FAILED"),
        ("query { viewer { " + " ".join(f"a{i}: role" for i in range(16)) + " } }", "TOO_MANY_ALIASES"),
        ("query { __schema { types { name } } }", "INTROSPECTION_DISABLED"),
        (ADMIN_ONLY, "FORBIDDEN"),
    ],
    ids=["unknown-field", "syntax", "aliases", "introspection", "field-not-allowed"],
)
def test_a_document_failing_the_checks_is_refused_and_nothing_is_registered(
    live_server: LiveServer, document: str, code: str
) -> None:
    token, _ = partner_key(live_server)
    valid = "query Fine { viewer { role } }"
    answer = register(live_server, token, valid, document)
    assert answer["ids"] == []
    assert {(error["field"], error["code"]) for error in answer["errors"]} == {("documents.1", code)}
    assert "noSuchField" not in answer["errors"][0]["message"]
    assert codes(run_by_id(live_server, token, document_id(valid)).json()) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_too_many_documents_in_one_call_are_refused(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    answer = register(live_server, token, *[f"query Q{i} {{ viewer {{ role }} }}" for i in range(101)])
    assert answer["ids"] == []
    assert [e["code"] for e in answer["errors"]] == ["TOO_MANY_DOCUMENTS"]


def test_an_unknown_or_malformed_id_is_not_found_without_detail(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    unknown = document_id("query Never { viewer { role } }")
    for identifier in (unknown, "sha256:xyz", "md5:00", unknown.removeprefix("sha256:")):
        response = run_by_id(live_server, token, identifier)
        body = response.json()
        assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"], identifier
        assert body.get("data") is None
        assert unknown.removeprefix("sha256:") not in response.text


def test_another_partners_document_answers_like_an_unknown_one(live_server: LiveServer) -> None:
    token_a, _ = partner_key(live_server)
    token_b, _ = partner_key(live_server)
    admin = live_server.issue_key(Role.ADMIN)
    text = "query OnlyA { viewer { partnerId } }"
    register(live_server, token_a, text)
    assert codes(run_by_id(live_server, token_a, document_id(text)).json()) == []
    unknown = run_by_id(live_server, token_b, document_id("query Other { viewer { partnerId } }")).json()
    for stranger in (token_b, admin):
        assert run_by_id(live_server, stranger, document_id(text)).json() == unknown


def test_an_admin_registers_for_a_named_partner_or_for_everyone(live_server: LiveServer) -> None:
    admin = live_server.issue_key(Role.ADMIN)
    token_a, _ = partner_key(live_server)
    token_b, partner_b = partner_key(live_server)
    for_b = "query ForB { viewer { role } }"
    everyone = "query Everyone { viewer { role } }"
    assert register(live_server, admin, for_b, partner_id=partner_b)["errors"] == []
    assert register(live_server, admin, everyone)["errors"] == []
    assert codes(run_by_id(live_server, token_b, document_id(for_b)).json()) == []
    assert codes(run_by_id(live_server, token_a, document_id(for_b)).json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    for token in (token_a, token_b, admin):
        assert codes(run_by_id(live_server, token, document_id(everyone)).json()) == []
    refused = register(live_server, token_a, "query Mine { viewer { role } }", partner_id=partner_b)
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert [e["code"] for e in register(live_server, admin, for_b, partner_id=10**9)["errors"]] == ["UNKNOWN_PARTNER"]
    listed = live_server.graphql(
        "query List($p: Int) { trustedDocuments(partnerId: $p) { id partnerId document } }",
        token=admin,
        variables={"p": partner_b},
    ).json()["data"]["trustedDocuments"]
    assert {"id": document_id(for_b), "partnerId": partner_b, "document": for_b} in listed
    assert {"id": document_id(everyone), "partnerId": None, "document": everyone} in listed


def test_field_permissions_still_apply_to_a_registered_document(live_server: LiveServer) -> None:
    """Refused at registration for a partner; registered globally by an admin, still FORBIDDEN to a partner."""
    admin = live_server.issue_key(Role.ADMIN)
    token, _ = partner_key(live_server)
    assert register(live_server, admin, ADMIN_ONLY)["errors"] == []
    assert codes(run_by_id(live_server, token, document_id(ADMIN_ONLY)).json()) == ["FORBIDDEN"]
    assert codes(run_by_id(live_server, admin, document_id(ADMIN_ONLY)).json()) == []


def test_variables_are_coerced_and_errors_shaped_as_for_text(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    text = "mutation Send($batch: EventBatchInput!) { ingestEvents(batch: $batch) { received } }"
    register(live_server, token, text)
    sent = run_by_id(live_server, token, document_id(text), variables={"batch": {"events": []}}).json()
    assert sent == {"data": {"ingestEvents": {"received": 0}}}
    wrong = run_by_id(live_server, token, document_id(text), variables={"batch": "probe-secret-x"})
    assert codes(wrong.json()) == ["BAD_USER_INPUT"]
    assert "probe-secret-x" not in wrong.text


def test_a_registered_document_runs_over_the_websocket(live_server: LiveServer) -> None:
    token, _ = partner_key(live_server)
    text = "query OverSocket { viewer { role } }"
    register(live_server, token, text)
    with transport_socket(live_server, token) as socket:
        ran = socket.subscribe({"documentId": document_id(text)})
        unknown = socket.subscribe({"documentId": document_id("query Nope { viewer { role } }")})
        apollo = socket.subscribe(
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_id(text).removeprefix("sha256:")}}}
        )
    assert ran.data == [{"viewer": {"role": "PARTNER"}}]
    assert ran.codes == []
    assert apollo.data == ran.data
    assert unknown.codes == ["PERSISTED_QUERY_NOT_FOUND"]
    assert unknown.data == []


@pytest.fixture(scope="module")
def enforcing_server(
    request: pytest.FixtureRequest,
    server_backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    keyring: Keyring,
) -> Iterator[LiveServer]:
    with server_with(
        request, server_backend, tmp_path_factory, keyring, "enforcing", trusted_documents_only="true"
    ) as server:
        yield server


def test_enforcement_refuses_partner_text_and_nothing_else(enforcing_server: LiveServer) -> None:
    server = enforcing_server
    token, partner_id = partner_key(server)
    admin = server.issue_key(Role.ADMIN)
    analyst = server.issue_key(Role.ANALYST)
    assert codes(server.graphql(WHO, token=token).json()) == ["TRUSTED_DOCUMENT_REQUIRED"]
    sneaky = "mutation { registerDocuments(documents: []) { ids } ingestEvents(batch: {events: []}) { received } }"
    assert codes(server.graphql(sneaky, token=token).json()) == ["TRUSTED_DOCUMENT_REQUIRED"]
    assert register(server, token, WHO)["ids"] == [document_id(WHO)]  # the registration text itself passes
    assert run_by_id(server, token, document_id(WHO)).json()["data"]["viewer"]["role"] == "PARTNER"
    for other in (admin, analyst):
        assert codes(server.graphql(WHO, token=other).json()) == []
    with transport_socket(server, token) as socket:
        refused = socket.run(WHO)
        allowed = socket.subscribe({"documentId": document_id(WHO)})
    assert refused.codes == ["TRUSTED_DOCUMENT_REQUIRED"]
    assert refused.data == []
    assert allowed.data == [{"viewer": {"role": "PARTNER", "partnerId": partner_id}}]
