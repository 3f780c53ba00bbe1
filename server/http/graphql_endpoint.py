"""The /graphql endpoint: authenticate the API key, then hand over to Strawberry.

Authentication happens before parsing, so a caller without a valid key learns nothing about
the schema: no validation messages, no field errors, just ``UNAUTHENTICATED``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from schema.context import Context
from schema.errors import shape_errors
from server.auth import api_keys
from server.auth.principal import Principal
from server.ingest.group_commit import GroupCommitter
from server.runtime import Runtime

BEARER = "bearer "


class StrawberryView(GraphQL[Context, None]):
    def __init__(self, runtime: Runtime, **options: Any) -> None:
        super().__init__(**options)
        self.runtime = runtime
        self.known_names = schema_names(options["schema"])
        self.group_commit = GroupCommitter(runtime, max_events=runtime.settings.ingest_max_batch)

    def decode_json(self, data: str | bytes) -> object:
        """orjson: a batch of 1,000 events is a megabyte of JSON, decoded on the event loop."""
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        state = request.scope.get("state", {})
        principal = state.get("principal")
        if principal is not None and "log_fields" in state:
            state["log_fields"]["role"] = principal.role.value
        return Context(
            runtime=self.runtime,
            principal=principal,
            request_id=state.get("request_id", "-"),
            log_fields=state.get("log_fields", {}),
            group_commit=self.group_commit,
        )

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        if result.errors:
            request_id = request.scope.get("state", {}).get("request_id", "-")
            result.errors = shape_errors(result.errors, request_id, self.known_names)
        return await super().process_result(request, result)


class GraphQLEndpoint:
    def __init__(self, runtime: Runtime, view: StrawberryView) -> None:
        self.runtime = runtime
        self.view = view
        self.anonymous_allowed = runtime.settings.demo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer_token(scope)
        principal = await self._authenticate(token) if token else None
        asks_for_ide = scope["type"] == "http" and scope.get("method") == "GET"
        if principal is None and (token or not (self.anonymous_allowed or asks_for_ide)):
            await _unauthenticated(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.view(scope, receive, send)

    async def _authenticate(self, token: str) -> Principal | None:
        def check() -> Principal | None:
            with self.runtime.sessions() as session:
                return api_keys.authenticate(session, token)

        return await run_in_threadpool(check)


def schema_names(schema: Any) -> frozenset[str]:
    """Type, field and argument names that error messages may repeat."""
    names: set[str] = set()
    for type_name, graphql_type in schema._schema.type_map.items():
        names.add(type_name)
        for field_name, field in (getattr(graphql_type, "fields", None) or {}).items():
            names.add(field_name)
            names.update(getattr(field, "args", {}) or {})
    return frozenset(names)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = value.decode("latin-1")
            if header.lower().startswith(BEARER):
                return header[len(BEARER) :].strip()
            return header.strip()
    return None


async def _unauthenticated(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401})
        return
    body = json.dumps(
        {"errors": [{"message": "authentication required", "extensions": {"code": "UNAUTHENTICATED"}}]}
    ).encode()
    response = Response(body, status_code=401, media_type="application/json", headers={"www-authenticate": "Bearer"})
    await response(scope, receive, send)


def build_view(runtime: Runtime, schema: Any) -> StrawberryView:
    return StrawberryView(
        runtime,
        schema=schema,
        graphql_ide="graphiql" if runtime.settings.graphiql_enabled else None,
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    )
