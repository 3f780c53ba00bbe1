"""A key revoked while its socket is open is refused at the socket's next operation.

The attacker here holds a key that leaked and opened a graphql-transport-ws socket before the
operator revoked it: the socket must not keep answering queries or taking in events.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from server.auth.principal import Role
from server.storage.tables import EventRow
from tests.http.test_ingest_api import INGEST, event
from tests.support.cli import run_audience
from tests.support.live_server import LiveServer
from tests.support.websocket import Outcome, transport_socket

REFUSED_CLOSE_CODES = {4401, 4403}


def key_id_of(token: str) -> str:
    return token.split("_", 1)[1].split(".", 1)[0]


def revoke_over_graphql(server: LiveServer, token: str) -> None:
    admin = server.issue_key(Role.ADMIN)
    answer = server.graphql(f'mutation {{ revokeApiKey(keyId: "{key_id_of(token)}") {{ revoked }} }}', token=admin)
    assert answer.json()["data"]["revokeApiKey"]["revoked"] is True


def revoke_with_the_cli(server: LiveServer, token: str) -> None:
    settings = server.runtime.settings
    environment = {"AUDIENCE_DATA_DIR": str(settings.data_dir), "AUDIENCE_DATABASE_URL": settings.database_url}
    done = run_audience("keys", "revoke", key_id_of(token), directory=settings.data_dir, env=environment)
    assert done.returncode == 0, done.stderr


REVOCATIONS: dict[str, Callable[[LiveServer, str], None]] = {
    "graphql": revoke_over_graphql,
    "cli": revoke_with_the_cli,
}


def assert_refused(outcome: Outcome) -> None:
    assert outcome.data == [], "a revoked key got data on its open socket"
    assert "UNAUTHENTICATED" in outcome.codes or outcome.close_code in REFUSED_CLOSE_CODES, outcome


def stored_events(server: LiveServer) -> int:
    with server.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)


@pytest.mark.parametrize("revocation", sorted(REVOCATIONS))
def test_revoked_key_gets_no_answer_on_its_open_socket(live_server: LiveServer, revocation: str) -> None:
    token = live_server.issue_key(Role.ANALYST)
    with transport_socket(live_server, token) as socket:
        assert socket.run("{ viewer { keyId } }").data == [{"viewer": {"keyId": key_id_of(token)}}]
        REVOCATIONS[revocation](live_server, token)
        assert_refused(socket.run("{ viewer { keyId } }"))


@pytest.mark.parametrize("revocation", sorted(REVOCATIONS))
def test_revoked_partner_key_cannot_ingest_on_its_open_socket(live_server: LiveServer, revocation: str) -> None:
    token = live_server.issue_key(Role.PARTNER)
    with transport_socket(live_server, token) as socket:
        first = socket.run(INGEST, variables={"batch": {"events": [event()]}})
        assert first.data[0]["ingestEvents"]["accepted"] == 1
        REVOCATIONS[revocation](live_server, token)
        before = stored_events(live_server)
        assert_refused(socket.run(INGEST, variables={"batch": {"events": [event(), event()]}}))
    assert stored_events(live_server) == before


def test_a_live_key_keeps_its_socket(live_server: LiveServer) -> None:
    """The check must not refuse what it should let through: other keys' revocations change nothing."""
    token = live_server.issue_key(Role.ANALYST)
    bystander = live_server.issue_key(Role.ANALYST)
    with transport_socket(live_server, token) as socket:
        revoke_over_graphql(live_server, bystander)
        for _ in range(3):
            assert socket.run("{ viewer { keyId } }").data == [{"viewer": {"keyId": key_id_of(token)}}]
