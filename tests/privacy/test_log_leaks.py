"""An attacker (or a careless partner) puts personal data everywhere a request can carry it;
none of it may reach the server's log, and error responses never echo it."""

from __future__ import annotations

import json

import httpx

from server.auth.principal import Role
from tests.support.live_server import LiveServer

EMAIL = "leak.probe.ana@example.org"
PHONE = "+4915112345678"
NAME = "Anastasia Leakprobe"
MARKERS = (EMAIL, PHONE, NAME, "leak.probe.ana", "4915112345678", "Leakprobe")


def send_everything(server: LiveServer) -> list[httpx.Response]:
    admin = server.issue_key(Role.ADMIN)
    partner = server.issue_key(Role.PARTNER)
    url = f"{server.base_url}/graphql"
    bearer = {"authorization": f"Bearer {admin}"}
    responses = [
        # variables, literals and names in valid and invalid operations
        server.graphql(
            "mutation($n: String!) { createPartner(name: $n, purposes: [ANALYTICS]) { errors { code } } }",
            token=admin,
            variables={"n": EMAIL},
        ),
        server.graphql(
            f'mutation {{ createApiKey(role: ANALYST, label: "{NAME} {PHONE}") {{ errors {{ code }} }} }}', token=admin
        ),
        server.graphql(
            "mutation($k: String!) { revokeApiKey(keyId: $k) { revoked } }", token=admin, variables={"k": EMAIL}
        ),
        server.graphql("query($x: Int!) { viewer { role } }", token=admin, variables={"x": EMAIL}),
        server.graphql(f'{{ viewer(email: "{EMAIL}") {{ role }} }}', token=admin),
        server.graphql(f'{{ "{EMAIL}" }}', token=admin),
        server.graphql(f"{{ {NAME.replace(' ', '_')} }}", token=admin),
        server.graphql("{ viewer { role } }", token=admin, operationName=NAME.replace(" ", "")),
        server.graphql(f"query LeakProbeAnaExampleOrg {{ auditLog(first: 1) {{ seq }} }} # {EMAIL}", token=partner),
        server.graphql(f'{{ __type(name: "{EMAIL}") {{ name }} }}', token=partner),
        # credentials and headers
        server.graphql("{ viewer { role } }", token=EMAIL),
        server.graphql("{ viewer { role } }", token=f"aud_0123456789abcdef.{EMAIL}"),
        httpx.post(url, json={"query": "{ viewer { role } }"}, headers={**bearer, "x-request-id": EMAIL}),
        httpx.post(url, json={"query": "{ viewer { role } }"}, headers={**bearer, "user-agent": NAME}),
        # malformed bodies and other routes
        httpx.post(
            url, content=f'{{"query": "{EMAIL}'.encode(), headers={**bearer, "content-type": "application/json"}
        ),
        httpx.post(url, content=EMAIL.encode(), headers={**bearer, "content-type": "text/plain"}),
        httpx.post(url, json=[{"query": EMAIL}], headers=bearer),
        httpx.get(url, params={"query": f'{{ viewer(q: "{EMAIL}") {{ role }} }}'}, headers=bearer),
        httpx.get(f"{server.base_url}/{EMAIL}"),
        httpx.get(f"{server.base_url}/graphql/{PHONE}", headers=bearer),
        httpx.get(f"{server.base_url}/healthz", params={"email": EMAIL}),
    ]
    return responses


def test_no_pii_reaches_the_log_or_error_texts(live_server: LiveServer) -> None:
    responses = send_everything(live_server)
    live_server.graphql("query LeakProbeDone { __typename }", token=live_server.issue_key(Role.ANALYST))
    live_server.log_lines_containing("LeakProbeDone")
    log = live_server.log_text()
    assert '"path":"/graphql"' in log, "the log was captured"
    for marker in MARKERS:
        assert marker not in log, f"log contains probe value {marker[:4]}…"
    for response in responses:
        if response.headers.get("content-type", "").startswith("application/json"):
            for error in response.json().get("errors", []) if isinstance(response.json(), dict) else []:
                text = json.dumps(error)
                assert not any(marker in text for marker in MARKERS), text


def test_every_log_line_is_structured_json(live_server: LiveServer) -> None:
    for line in live_server.log_text().splitlines():
        if line.startswith("serving on"):
            continue
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= record.keys()


def test_request_lines_carry_operation_role_status_and_duration(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ANALYST)
    live_server.graphql("query WhoAmIForLog { viewer { role } }", token=token)
    lines = [json.loads(line) for line in live_server.log_lines_containing("WhoAmIForLog")]
    assert len(lines) == 1
    assert lines[0]["role"] == "analyst"
    assert lines[0]["status"] == 200
    assert lines[0]["outcome"] == "ok"
    assert lines[0]["duration_ms"] >= 0
