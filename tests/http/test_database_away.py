"""The database away: every request gets a JSON 503 with a code and a request id, within a bound.

PostgreSQL sits behind a TCP proxy that, mid-run, stops answering (a network partition: the
peer accepted and went silent) or closes its port. SQLite's disk fills up mid-run (the server's
file-size limit drops to one byte, so every write fails as it would on a full disk). In each case
``/healthz`` keeps answering, ``/readyz`` says not ready, and ``/graphql`` answers at once with
``SERVICE_UNAVAILABLE`` and a request id, storing nothing.
"""

from __future__ import annotations

import json
import resource
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from privacy.keyring import Keyring
from server.auth.principal import Role
from server.storage.tables import EventRow
from tests.http.test_ingest_api import INGEST, event
from tests.support.databases import PostgresServer, copy_sqlite
from tests.support.live_server import LiveServer, start_server
from tests.support.tcp_proxy import TcpProxy
from tests.support.websocket import TRANSPORT_WS, ws_url

BOUNDS = {
    # Keys read from the database on every request: with the per-worker key cache, a request that
    # needs nothing else (``viewer``, a handshake) may still be answered for up to its bound after
    # the database goes away (docs/configuration.md); these tests are about what needs the database.
    "api_key_cache_seconds": "0",
    "database_connect_timeout_seconds": "2",
    "database_statement_timeout_seconds": "1",
    "database_pool_timeout_seconds": "2",
    "readiness_timeout_seconds": "1",
}
# The slowest bound is a statement's: its timeout plus the client's grace (2 s), plus a margin
# for a loaded machine. Without the bounds a partition holds a request for as long as it lasts.
ANSWER_WITHIN_S = 8.0


READ = ("{ viewer { keyId } }", None)


def write_operation() -> tuple[str, dict[str, Any]]:
    return INGEST, {"batch": {"events": [event()]}}


def assert_answers_unavailable(server: LiveServer, token: str, operations: list[tuple[str, Any]]) -> None:
    for query, variables in operations:
        started = time.monotonic()
        response = httpx.post(
            f"{server.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {token}"},
            timeout=ANSWER_WITHIN_S + 5,
        )
        assert time.monotonic() - started < ANSWER_WITHIN_S
        assert response.status_code == 503, response.text
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert error["extensions"]["requestId"] == response.headers["x-request-id"]


def assert_alive_but_not_ready(server: LiveServer) -> None:
    assert httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200
    started = time.monotonic()
    ready = httpx.get(f"{server.base_url}/readyz", timeout=ANSWER_WITHIN_S + 5)
    assert time.monotonic() - started < ANSWER_WITHIN_S
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


def assert_serving(server: LiveServer, token: str) -> None:
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
    body = server.graphql(INGEST, token=token, variables={"batch": {"events": [event()]}}).json()
    assert body["data"]["ingestEvents"]["accepted"] == 1, body


@pytest.fixture
def proxied_postgres(
    request: pytest.FixtureRequest, tmp_path: Path, keyring: Keyring
) -> Iterator[tuple[LiveServer, TcpProxy]]:
    postgres: PostgresServer = request.getfixturevalue("postgres")
    name = postgres.create(template=request.getfixturevalue("postgres_template"))
    direct = make_url(postgres.url(name))
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    server = start_server(directory=tmp_path, database_url=url, keyring=keyring, **BOUNDS)
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.close()
        postgres.drop(name)


@pytest.mark.parametrize("failure", ["stop_answering", "close"])
def test_postgres_away_mid_run(proxied_postgres: tuple[LiveServer, TcpProxy], failure: str) -> None:
    server, proxy = proxied_postgres
    token = server.issue_key(Role.ADMIN)
    assert_serving(server, token)
    getattr(proxy, failure)()
    assert_alive_but_not_ready(server)
    assert_answers_unavailable(server, token, [READ, write_operation()])
    assert_alive_but_not_ready(server)


def test_postgres_away_at_a_websocket_handshake(proxied_postgres: tuple[LiveServer, TcpProxy]) -> None:
    """The key cannot be looked up: the handshake gets the 503 an HTTP request would, not a refusal."""
    server, proxy = proxied_postgres
    token = server.issue_key(Role.ADMIN)
    assert_serving(server, token)
    proxy.close()
    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url(server),
            subprotocols=[TRANSPORT_WS],
            additional_headers={"authorization": f"Bearer {token}"},
            open_timeout=ANSWER_WITHIN_S,
        )
    response = refused.value.response
    assert response.status_code == 503
    [error] = json.loads(response.body or b"")["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


@contextmanager
def file_size_limit_survivable() -> Iterator[None]:
    """A process over its file-size limit is killed by SIGXFSZ unless it ignores it (inherited)."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGXFSZ, previous)


def limit_file_size(server: LiveServer, limit: int) -> Callable[[], None]:
    """Every write past ``limit`` bytes fails (EFBIG), as on a full disk; returns the lift."""
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def lift() -> None:
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    return lift


def stored_events(server: LiveServer) -> int:
    with server.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)


def test_sqlite_disk_full_mid_run(tmp_path: Path, keyring: Keyring, sqlite_template: Path) -> None:
    url = copy_sqlite(sqlite_template, tmp_path / "audience.db")
    with file_size_limit_survivable():
        server = start_server(directory=tmp_path, database_url=url, keyring=keyring, **BOUNDS)
    try:
        token = server.issue_key(Role.ADMIN)
        assert_serving(server, token)
        before = stored_events(server)
        lift = limit_file_size(server, 1)
        assert_alive_but_not_ready(server)
        # Reads still work from a full disk; writes are refused cleanly.
        assert_answers_unavailable(server, token, [write_operation(), write_operation()])
        assert stored_events(server) == before
        lift()
        assert_serving(server, token)
    finally:
        server.stop()
