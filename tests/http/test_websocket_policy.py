"""WebSockets: only the graphql-transport-ws subprotocol, and only with a valid key at the handshake."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from server.auth.principal import Role
from tests.support.live_server import LiveServer
from tests.support.websocket import ws_url


def handshake(server: LiveServer, protocol: str, token: str | None) -> str:
    """Open, send connection_init, return the first message's type."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with connect(
        ws_url(server),
        subprotocols=[Subprotocol(protocol)],
        additional_headers=headers,
        open_timeout=5,
    ) as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        return str(json.loads(socket.recv(timeout=5))["type"])


def test_legacy_graphql_ws_protocol_is_refused(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        handshake(live_server, "graphql-ws", token)


def test_websocket_without_a_key_is_closed(live_server: LiveServer) -> None:
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        handshake(live_server, "graphql-transport-ws", None)


def test_transport_ws_with_a_key_is_acknowledged(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    assert handshake(live_server, "graphql-transport-ws", token) == "connection_ack"
