"""graphql-transport-ws with the API key checked again before every operation on an open socket.

The key is proven once, at the handshake; a socket can then stay open for hours. Without a
second look a key revoked meanwhile would keep querying and ingesting on it. So each
``subscribe`` message looks the key up again (one indexed read): a revoked key gets
``UNAUTHENTICATED`` and the socket is closed with 4401, which also ends whatever still runs on
it; a live key's role, partner and purposes are taken as they stand now.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from schema.context import Context
from schema.errors import UNAUTHENTICATED_ERROR, unavailable_error
from server.auth import api_keys
from server.auth.principal import Principal
from server.storage.availability import is_unavailable

UNAUTHORIZED_CLOSE = 4401


class KeyCheckedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        principal = self.context.principal
        if not self.connection_acknowledged or principal is None:
            # Before the ack Strawberry closes the socket itself; no principal means demo mode.
            await super().handle_subscribe(message)
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
        await super().handle_subscribe(message)

    def _current(self, principal: Principal) -> Principal | None:
        with self.context.runtime.sessions() as session:
            return api_keys.current_principal(session, principal)
