"""WebSockets: only the graphql-transport-ws subprotocol, and only with a valid key at the handshake."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message, Scope
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from server.auth.principal import Role
from server.http.graphql_endpoint import _unauthenticated
from tests.support.live_server import LiveServer
from tests.support.websocket import WAIT_S, ws_url


def handshake(server: LiveServer, protocol: str, token: str | None) -> str:
    """Open, send connection_init, return the first message's type."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with connect(
        ws_url(server),
        subprotocols=[Subprotocol(protocol)],
        additional_headers=headers,
        open_timeout=WAIT_S,
    ) as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        return str(json.loads(socket.recv(timeout=WAIT_S))["type"])


def test_legacy_graphql_ws_protocol_is_refused(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        handshake(live_server, "graphql-ws", token)


def test_websocket_without_a_key_is_closed(live_server: LiveServer) -> None:
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        handshake(live_server, "graphql-transport-ws", None)


def refused_handshake(server: LiveServer, token: str | None) -> InvalidStatus:
    """The HTTP answer a WebSocket handshake got instead of a socket."""
    with pytest.raises(InvalidStatus) as refused:
        handshake(server, "graphql-transport-ws", token)
    return refused.value


@pytest.mark.parametrize("token", ["aud_0000000000000000.wrong", None], ids=["wrong-key", "no-key"])
def test_websocket_refused_at_handshake_answers_like_http(live_server: LiveServer, token: str | None) -> None:
    """401 with ``UNAUTHENTICATED``, as over HTTP: "refused" is told from "come back later" (503)."""
    response = refused_handshake(live_server, token).response
    assert response.status_code == 401
    [error] = json.loads(response.body or b"")["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


def test_transport_ws_with_a_key_is_acknowledged(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    assert handshake(live_server, "graphql-transport-ws", token) == "connection_ack"


def test_without_the_denial_extension_a_refused_socket_is_accepted_then_closed_4401() -> None:
    """An ASGI server that cannot send an HTTP answer to a handshake still lets the code through."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "websocket", "path": "/graphql", "headers": [], "extensions": {}}
    asyncio.run(_unauthenticated(scope, receive, send))
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.close"]
    assert sent[-1]["code"] == 4401
