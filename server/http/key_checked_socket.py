"""graphql-transport-ws with the API key checked again before every operation on an open socket.

The key is proven once, at the handshake; a socket can then stay open for hours. Without a
second look a key revoked meanwhile would keep querying and ingesting on it. So each
``subscribe`` message looks the key up again (one indexed read): a revoked key gets
``UNAUTHENTICATED`` and the socket is closed with 4401, which also ends whatever still runs on
it; a live key's role, partner and purposes are taken as they stand now.

A subscribe message may name a registered document (``documentId`` or Apollo's
``extensions.persistedQuery``) instead of carrying ``query``: Strawberry passes no extensions on
from a socket, so the request rides in a context variable the operation's task inherits.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from schema.context import Context
from schema.errors import UNAUTHENTICATED_ERROR, unavailable_error
from schema.trusted_documents.lookup import REQUESTED_OVER_WEBSOCKET, requested_document
from server.auth import api_keys
from server.auth.principal import Principal
from server.storage.availability import is_unavailable

UNAUTHORIZED_CLOSE = 4401


class KeyCheckedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        principal = self.context.principal
        if not self.connection_acknowledged or principal is None:
            # Before the ack Strawberry closes the socket itself; no principal means demo mode.
            await self._start(message)
            return
        try:
            current = await run_in_threadpool(self._current, principal)
        except Exception as error:
            if not is_unavailable(error):
                raise
            payload = [unavailable_error(self.context.request_id, error).formatted]
            await self.send_message({"id": message["id"], "type": "error", "payload": payload})
            return
        if current is None:
            await self.send_message({"id": message["id"], "type": "error", "payload": [UNAUTHENTICATED_ERROR]})
            await self.websocket.close(code=UNAUTHORIZED_CLOSE, reason="Unauthorized")
            return
        self.context.principal = current
        await self._start(message)

    async def _start(self, message: SubscribeMessage) -> None:
        payload = message["payload"]
        request = None if payload.get("query") else requested_document(payload)
        if request is None:
            await super().handle_subscribe(message)
            return
        payload["query"] = ""  # Strawberry requires the key; the document comes from the request
        token = REQUESTED_OVER_WEBSOCKET.set(request)
        try:
            await super().handle_subscribe(message)  # the operation's task is created in here
        finally:
            REQUESTED_OVER_WEBSOCKET.reset(token)

    def _current(self, principal: Principal) -> Principal | None:
        with self.context.runtime.sessions() as session:
            return api_keys.current_principal(session, principal)
