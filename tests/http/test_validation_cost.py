"""One request cannot stall the server: checking a document costs what its text costs, not its expansion.

Each attack below is at most 20 KB. Inlined, the fan-outs expand to 2**30 selections, and the
wide ones ask graphql-core's overlap rule for hundreds of thousands of comparisons. Each is
sent as an attacker would, with the least privileged key (and with no key at all to a demo
server), over HTTP and over the WebSocket transport, while ``/healthz`` is polled, on both
backends. A refusal must come with a code within a second and ``/healthz`` must keep answering
meanwhile. Before the fix, 30 levels took hours and blocked the event loop throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from privacy.keyring import Keyring
from server.auth.principal import Role
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with

LEVELS = 30
# Measured from the client, a thread's start and a health poll included: ~0.12 s typically and up to
# 0.34 s (the wide ones 0.48 s) in 288 sends on the 2-core machine with a whole CI run beside them;
# in a run, each session server's segment worker also republishes every five minutes. Before the
# fix a fan-out took hours, so a second still tells the two apart without leaving the tail to chance.
PROMPT_S = 1.0
# A wide document costs what any document at the token limit costs to parse and check (5,000
# tokens, ~0.1 s of one idle core), so it gets the looser bound; before the fix it took 3 s.
WIDE_PROMPT_S = 2.0
# /healthz shares the interpreter lock with the thread checking the document, so it answers
# more slowly meanwhile; it must not stall (before the fix it waited as long as the check).
HEALTH_S = 1.0
ATTACK_TIMEOUT_S = 10.0  # how long the test waits before calling the server stalled
LIMIT_CODES = {"QUERY_TOO_DEEP", "TOO_MANY_ALIASES", "TOO_MANY_ROOT_FIELDS", "QUERY_TOO_COMPLEX"}


def fan_out(operation: str, *, leaf: str, step: str, on: str = "Query", levels: int = LEVELS) -> str:
    """``operation`` spreads F{levels}; each fragment spreads the one before it (``{p}``) as ``step`` says."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"]
    fragments += [f"fragment F{i} on {on} {{ {step.format(p=f'F{i - 1}')} }}" for i in range(1, levels + 1)]
    return operation.format(top=f"F{levels}") + " " + " ".join(fragments)


REFUSED = {
    "each fragment spreads the previous one twice": fan_out(
        "query {{ ...{top} }}", leaf="viewer { role }", step="...{p} ...{p}"
    ),
    "through aliases": fan_out(
        "query {{ ...{top} }}", leaf="a: viewer { role }", step="...{p} b: viewer {{ role }} ...{p}"
    ),
    "through inline fragments": fan_out(
        "query {{ ...{top} }}", leaf="viewer { role }", step="... on Query {{ ...{p} }} ... {{ ...{p} }}"
    ),
    "through nested fields": fan_out(
        "query {{ ...{top} }}", leaf="viewer { role }", step="viewer {{ ...{p} }} ...{p} ...{p}"
    ),
    "wide, aimed at the overlap rule": "{ auditLog { " + " ".join(["details { key }"] * 1200) + " } }",
    "wide through fragments, aimed at the overlap rule": "{ auditLog { "
    + " ".join(f"...D{i}" for i in range(200))
    + " } } "
    + " ".join(f"fragment D{i} on AuditEntry {{ details {{ key }} }}" for i in range(200)),
}
# Valid and cheap to run (execution collects each fragment once), so it is answered, not refused.
ANSWERED = fan_out("query {{ viewer {{ ...{top} }} }}", leaf="role", step="...{p} ...{p}", on="Viewer")


@dataclass
class Timed:
    answer: dict[str, Any]
    seconds: float
    health_seconds: list[float]


def while_polling_health(server: LiveServer, send: Callable[[], dict[str, Any]]) -> Timed:
    """Send the attack from a thread and poll /healthz until it is answered (at least once)."""
    health_seconds: list[float] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        future = pool.submit(send)
        while True:
            polled = time.monotonic()
            assert httpx.get(f"{server.base_url}/healthz", timeout=ATTACK_TIMEOUT_S).status_code == 200
            health_seconds.append(time.monotonic() - polled)
            if future.done() or time.monotonic() - started > ATTACK_TIMEOUT_S:
                break
            time.sleep(0.02)
        answer = future.result(timeout=ATTACK_TIMEOUT_S)
        return Timed(answer, time.monotonic() - started, health_seconds)


def over_http(server: LiveServer, query: str, token: str | None) -> Callable[[], dict[str, Any]]:
    def send() -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{server.base_url}/graphql", json={"query": query}, headers=headers, timeout=ATTACK_TIMEOUT_S
        )
        answer: dict[str, Any] = response.json()
        return answer

    return send


def over_websocket(server: LiveServer, query: str, token: str) -> Callable[[], dict[str, Any]]:
    """graphql-transport-ws: the answer is the first ``next`` or ``error`` message's payload."""

    def send() -> dict[str, Any]:
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        headers = {"authorization": f"Bearer {token}"}
        protocols = [Subprotocol("graphql-transport-ws")]
        with connect(url, subprotocols=protocols, additional_headers=headers, open_timeout=5) as socket:
            socket.send(json.dumps({"type": "connection_init"}))
            assert json.loads(socket.recv(timeout=5))["type"] == "connection_ack"
            socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
            message = json.loads(socket.recv(timeout=ATTACK_TIMEOUT_S))
        if message["type"] == "error":
            return {"data": None, "errors": message["payload"]}
        payload: dict[str, Any] = message["payload"]
        return payload

    return send


def codes(answer: dict[str, Any]) -> set[str | None]:
    return {error.get("extensions", {}).get("code") for error in answer.get("errors") or []}


def assert_refused_promptly(timed: Timed, attack: str) -> None:
    """Refused by a limit; other validation errors may come with it (a fragment nested where it does not fit)."""
    assert timed.answer.get("data") is None
    assert codes(timed.answer) & LIMIT_CODES, codes(timed.answer)
    bound = WIDE_PROMPT_S if attack.startswith("wide") else PROMPT_S
    assert timed.seconds < bound, f"refused after {timed.seconds:.2f} s"
    assert max(timed.health_seconds) < HEALTH_S, f"/healthz took {max(timed.health_seconds):.2f} s"


@pytest.fixture(scope="module")
def partner(live_server: LiveServer) -> str:
    return live_server.issue_key(Role.PARTNER)


@pytest.fixture(scope="module")
def demo_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    with server_with(request, server_backend, tmp_path_factory, keyring, "demo", demo="true") as server:
        yield server


@pytest.mark.parametrize("attack", list(REFUSED))
def test_attack_over_http_is_refused_promptly_while_healthz_answers(
    live_server: LiveServer, partner: str, attack: str
) -> None:
    assert len(REFUSED[attack]) < 20_000  # the wide ones; each fan-out is under 2 KB
    assert_refused_promptly(while_polling_health(live_server, over_http(live_server, REFUSED[attack], partner)), attack)


@pytest.mark.parametrize("attack", list(REFUSED))
def test_attack_over_websocket_is_refused_promptly_while_healthz_answers(
    live_server: LiveServer, partner: str, attack: str
) -> None:
    timed = while_polling_health(live_server, over_websocket(live_server, REFUSED[attack], partner))
    assert_refused_promptly(timed, attack)


@pytest.mark.parametrize("attack", list(REFUSED))
def test_attack_without_a_key_on_a_demo_server_is_refused_promptly(demo_server: LiveServer, attack: str) -> None:
    assert_refused_promptly(while_polling_health(demo_server, over_http(demo_server, REFUSED[attack], None)), attack)


def test_fan_out_under_a_field_is_answered_promptly(live_server: LiveServer, partner: str) -> None:
    timed = while_polling_health(live_server, over_http(live_server, ANSWERED, partner))
    assert timed.answer == {"data": {"viewer": {"role": "PARTNER"}}}
    assert timed.seconds < PROMPT_S, f"answered after {timed.seconds:.2f} s"


def test_an_attack_answered_once_is_refused_again_from_the_cache(live_server: LiveServer, partner: str) -> None:
    """The refusal is cached like any validation result: the second send costs a lookup."""
    send = over_http(live_server, REFUSED["wide, aimed at the overlap rule"], partner)
    first, second = send(), send()
    assert codes(first) == codes(second) == {"QUERY_TOO_COMPLEX"}
