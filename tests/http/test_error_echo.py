"""No error repeats what the client sent, and HTTP and WebSocket shape errors alike.

Each probe below is one class of graphql-core (or Strawberry) message that embeds something
from the request: a literal printed back, a variable's value, a name the client made up, an
operation name. Each carries a fresh marker; the marker must never come back, over HTTP or over
graphql-transport-ws, and both transports must give the same codes and messages.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from server.auth.principal import Role
from tests.support.live_server import LiveServer
from tests.support.websocket import transport_socket

NAME = "zqmark" + secrets.token_hex(4)  # a GraphQL name: unquoted literal, enum value, field, alias...
CONSENT_VALUE = '"q@x.org"'
NUMBER = str(7_300_000_000_000 + secrets.randbelow(10**12))  # an integer outside 32 bits, like a phone


@dataclass(frozen=True)
class Probe:
    document: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None


PROBES: dict[str, Probe] = {
    # literals of the wrong type, printed back by the scalar or input coercion
    "name-literal-for-string": Probe(f"mutation {{ revokeApiKey(keyId: {NAME}) {{ revoked }} }}"),
    "int-literal-for-string": Probe(f"mutation {{ revokeApiKey(keyId: {NUMBER}) {{ revoked }} }}"),
    "float-literal-for-int": Probe(f"{{ auditLog(afterSeq: {NUMBER}.5, first: 1) {{ seq }} }}"),
    "int-literal-beyond-32-bits": Probe(f"{{ auditLog(afterSeq: {NUMBER}, first: 1) {{ seq }} }}"),
    "string-literal-for-int": Probe(f'{{ auditLog(afterSeq: "{NAME}", first: 1) {{ seq }} }}'),
    "object-literal-for-string": Probe(f'mutation {{ revokeApiKey(keyId: {{a: "{NAME}"}}) {{ revoked }} }}'),
    "list-literal-for-string": Probe(f'mutation {{ revokeApiKey(keyId: ["{NAME}", {NUMBER}]) {{ revoked }} }}'),
    "unknown-enum-value": Probe(f'mutation {{ createPartner(name: "p", purposes: [{NAME}]) {{ errors {{ code }} }} }}'),
    "string-literal-for-enum": Probe(
        f'mutation {{ createPartner(name: "p", purposes: ["{NAME}"]) {{ errors {{ code }} }} }}'
    ),
    "object-literal-for-enum": Probe(f'{{ consent(identifier: {{kind: {{x: {NAME}}}, value: "a"}}) {{ found }} }}'),
    "unknown-input-field": Probe(
        f'{{ consent(identifier: {{kind: EMAIL, value: "{NAME}", {NAME}: {NUMBER}}}) {{ found }} }}'
    ),
    "missing-input-field": Probe(f'{{ consent(identifier: {{value: "{NAME}", partnerId: {NUMBER}}}) {{ found }} }}'),
    "scalar-for-input-object": Probe(f"{{ consent(identifier: {NAME}) {{ found }} }}"),
    "wrong-default-value": Probe(f'query($v: Int = "{NAME}") {{ auditLog(afterSeq: $v, first: 1) {{ seq }} }}'),
    # variables of the wrong type, printed back by variable coercion
    "string-variable-for-int": Probe(
        "query($s: Int!) { auditLog(afterSeq: $s, first: 1) { seq } }", variables={"s": NAME}
    ),
    "number-variable-beyond-32-bits": Probe(
        "query($s: Int!) { auditLog(afterSeq: $s, first: 1) { seq } }", variables={"s": int(NUMBER)}
    ),
    "list-variable-for-int": Probe(
        "query($s: Int!) { auditLog(afterSeq: $s, first: 1) { seq } }", variables={"s": [NAME, int(NUMBER)]}
    ),
    "number-variable-for-string": Probe(
        "mutation($k: String!) { revokeApiKey(keyId: $k) { revoked } }", variables={"k": int(NUMBER)}
    ),
    "variable-with-unknown-field": Probe(
        "query($i: IdentifierInput!) { consent(identifier: $i) { found } }",
        variables={"i": {"kind": "EMAIL", "value": "a", NAME: NUMBER}},
    ),
    "variable-with-unknown-enum-value": Probe(
        "query($i: IdentifierInput!) { consent(identifier: $i) { found } }",
        variables={"i": {"kind": NAME, "value": NUMBER}},
    ),
    # names the client made up
    "unknown-field": Probe(f"{{ {NAME} {{ keyId }} }}"),
    "unknown-argument": Probe(f"{{ viewer({NAME}: {NUMBER}) {{ keyId }} }}"),
    "unknown-variable": Probe(f"{{ auditLog(afterSeq: ${NAME}, first: 1) {{ seq }} }}"),
    "unknown-type": Probe(f"query($v: {NAME}) {{ viewer {{ keyId }} }}"),
    "unknown-fragment": Probe(f"{{ ...{NAME} }}"),
    "fragment-on-unknown-type": Probe(f"fragment F on {NAME} {{ keyId }} {{ ...F }}"),
    "unknown-directive": Probe(f"{{ viewer @{NAME} {{ keyId }} }}"),
    "unused-variable": Probe(f"query(${NAME}: Int) {{ viewer {{ keyId }} }}"),
    "unused-fragment": Probe(f"fragment {NAME} on Query {{ viewer {{ keyId }} }} {{ viewer {{ keyId }} }}"),
    "conflicting-aliases": Probe(f"{{ {NAME}: viewer {{ keyId }} {NAME}: partners {{ name }} }}"),
    "duplicate-operation-names": Probe(f"query {NAME} {{ viewer {{ keyId }} }} query {NAME} {{ viewer {{ role }} }}"),
    "unknown-operation-name": Probe("query A { viewer { keyId } }", operation_name=NAME),
    "operation-name-without-operations": Probe("fragment F on Query { viewer { keyId } }", operation_name=NAME),
    "syntax-error": Probe(f'{{ viewer {{ keyId }} {NAME}" }}'),
    # names the client made up, printed before a nested ``value:`` key or outside quotes
    "unknown-input-field-first": Probe(
        f"mutation {{ recordConsent(input: {{{NAME}top: 1, identifier: {{kind: EMAIL, value: {CONSENT_VALUE}}}, "
        f'purpose: ANALYTICS, granted: true, source: "a", policyVersion: "b"}}) {{ recorded }} }}'
    ),
    "unknown-input-field-nested": Probe(
        f"mutation {{ recordConsent(input: {{identifier: {{kind: EMAIL, {NAME}nest: 5, value: {CONSENT_VALUE}}}, "
        f'purpose: ANALYTICS, granted: true, source: "a", policyVersion: "b"}}) {{ recorded }} }}'
    ),
    "unknown-argument-before-input": Probe(
        f"{{ consent({NAME}arg: {{{NAME}argfield: 1}}, identifier: {{kind: EMAIL, value: {CONSENT_VALUE}}}) "
        "{ found } }"
    ),
    "unknown-directive-with-input": Probe(
        f"{{ consent(identifier: {{kind: EMAIL, value: {CONSENT_VALUE}}}) @{NAME}dir(x: {{{NAME}dirarg: 1}}) "
        "{ found } }"
    ),
    "unknown-bare-name-before-value": Probe(
        f"{{ consent(identifier: {{kind: {NAME}enum, value: {CONSENT_VALUE}}}) {{ found }} }}"
    ),
    "unknown-bare-name-in-unknown-field": Probe(
        f"{{ consent(identifier: {{kind: EMAIL, x: {NAME}bare, value: {CONSENT_VALUE}}}) {{ found }} }}"
    ),
}

TYPO = Probe("{ viewr { keyId } }")


def http_errors(server: LiveServer, token: str, probe: Probe) -> tuple[str, list[dict[str, Any]]]:
    extra = {"operationName": probe.operation_name} if probe.operation_name else {}
    response = server.graphql(probe.document, token=token, variables=probe.variables, **extra)
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.text, response.json()["errors"]


def ws_errors(server: LiveServer, token: str, probe: Probe) -> tuple[str, list[dict[str, Any]]]:
    with transport_socket(server, token) as socket:
        outcome = socket.run(probe.document, variables=probe.variables, operation_name=probe.operation_name)
    assert outcome.close_code is None, f"socket closed {outcome.close_code} {outcome.close_reason!r}"
    return json.dumps(outcome.all_errors) + outcome.close_reason, outcome.all_errors


def shapes(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(error["extensions"]["code"], error["message"]) for error in errors]


@pytest.fixture(scope="module")
def admin(live_server: LiveServer) -> str:
    return live_server.issue_key(Role.ADMIN)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_no_error_repeats_what_the_client_sent(live_server: LiveServer, admin: str, probe: str) -> None:
    for transport in (http_errors, ws_errors):
        text, errors = transport(live_server, admin, PROBES[probe])
        assert errors, f"{transport.__name__}: the probe should fail"
        assert NAME not in text, f"{transport.__name__} echoed the name: {text}"
        assert NUMBER not in text, f"{transport.__name__} echoed the number: {text}"
        assert all(error.get("extensions", {}).get("code") for error in errors), text


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_http_and_websocket_give_the_same_errors(live_server: LiveServer, admin: str, probe: str) -> None:
    _, over_http = http_errors(live_server, admin, PROBES[probe])
    _, over_ws = ws_errors(live_server, admin, PROBES[probe])
    assert shapes(over_ws) == shapes(over_http)


def test_a_typo_gets_no_suggestion_on_either_transport(live_server: LiveServer, admin: str) -> None:
    for transport in (http_errors, ws_errors):
        text, errors = transport(live_server, admin, TYPO)
        assert "Did you mean" not in text, text
        assert "viewer" not in text, text
        assert shapes(errors) == [("GRAPHQL_VALIDATION_FAILED", "Cannot query field '<name>' on type 'Query'.")]


def test_an_unknown_operation_name_is_a_json_error_not_plain_text(live_server: LiveServer, admin: str) -> None:
    response = live_server.graphql("query A { viewer { keyId } }", token=admin, operationName=NAME)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
