"""A graphql-transport-ws client over a real socket, as a browser or partner SDK would speak it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.support.live_server import LiveServer

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
WAIT_S = 30.0  # as long as ``LiveServer.graphql`` waits for an answer over HTTP


def ws_url(server: LiveServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/graphql"


@dataclass
class Outcome:
    """What one operation got back: its ``next`` payloads, its ``error`` payload, or a close code."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def data(self) -> list[Any]:
        return [payload.get("data") for payload in self.payloads if payload.get("data") is not None]

    @property
    def all_errors(self) -> list[dict[str, Any]]:
        return self.errors + [error for payload in self.payloads for error in payload.get("errors", [])]

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.all_errors]


@dataclass
class TransportSocket:
    connection: ClientConnection
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def run(self, query: str, *, variables: dict[str, Any] | None = None, operation_name: str | None = None) -> Outcome:
        """Send one ``subscribe`` and read until it completes, fails or the socket closes."""
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if operation_name is not None:
            payload["operationName"] = operation_name
        return self.subscribe(payload)

    def subscribe(self, payload: dict[str, Any]) -> Outcome:
        """``run`` with the subscribe payload as given (a registered document's id in place of a query)."""
        operation_id = str(next(self._ids))
        outcome = Outcome()
        try:
            self.connection.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))
            while True:
                message = json.loads(self.connection.recv(timeout=WAIT_S))
                if message.get("id") != operation_id:
                    continue
                if message["type"] == "next":
                    outcome.payloads.append(message["payload"])
                elif message["type"] == "error":
                    outcome.errors.extend(message["payload"])
                    return outcome
                elif message["type"] == "complete":
                    return outcome
        except ConnectionClosed as closed:
            received = closed.rcvd
            outcome.close_code = received.code if received is not None else None
            outcome.close_reason = received.reason if received is not None else ""
            return outcome


@contextmanager
def transport_socket(server: LiveServer, token: str | None) -> Iterator[TransportSocket]:
    """An acknowledged graphql-transport-ws connection."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with connect(
        ws_url(server), subprotocols=[TRANSPORT_WS], additional_headers=headers, open_timeout=WAIT_S
    ) as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        acknowledged = json.loads(socket.recv(timeout=WAIT_S))
        if acknowledged.get("type") != "connection_ack":
            raise AssertionError(f"no connection_ack: {acknowledged}")
        yield TransportSocket(socket)
