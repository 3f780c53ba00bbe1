"""The /graphql endpoint: authenticate the API key, then hand over to Strawberry.

Authentication happens before parsing (a key verified lately is taken from this worker's
``VerifiedKeys``, see its docstring for the revocation bound), so a caller without a valid key learns nothing about
the schema: no validation messages, no field errors, just ``UNAUTHENTICATED``. Every answer is
JSON with a code: a request Strawberry refuses before running it (its plain-text 400s) and a
database that is away when the key is looked up (503 with the request id) included, and a
WebSocket handshake refused for either reason gets the same HTTP answer.

A POST that names a registered document and carries no text is run straight on graphql-core
(``schema.registered_execution``), past Strawberry's view; anything else goes to the view.
"""

from __future__ import annotations

import json
from typing import Any, cast

import orjson
from cross_web import HTTPException
from graphql.error import GraphQLFormattedError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from schema import AudienceSchema, registered_execution
from schema.context import Context
from schema.errors import (
    REQUEST_ERRORS,
    UNAUTHENTICATED_ERROR,
    ErrorCode,
    request_error,
    scrub_message,
    unavailable_error,
)
from schema.trusted_documents.lookup import DOCUMENT_ID
from server.auth import api_keys
from server.auth.principal import Principal
from server.auth.verified_keys import VerifiedKeys
from server.http.key_checked_socket import KeyCheckedTransportWSHandler
from server.http.registered_requests import is_json_post, read_body, registered_request, replaying
from server.ingest.group_commit import GroupCommitter
from server.runtime import Runtime
from server.storage.availability import is_unavailable

BEARER = "bearer "


class StrawberryView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = KeyCheckedTransportWSHandler

    def __init__(self, runtime: Runtime, **options: Any) -> None:
        super().__init__(**options)
        self.runtime = runtime
        self.group_commit = GroupCommitter(runtime, max_events=runtime.settings.ingest_max_batch)
        self.verified_keys = VerifiedKeys(ttl_seconds=runtime.settings.api_key_cache_seconds)

    def decode_json(self, data: str | bytes) -> object:
        """orjson: a batch of 1,000 events is a megabyte of JSON, decoded on the event loop."""
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        """A top-level ``documentId`` (a registered document) moves into ``extensions``, which
        Strawberry hands to the schema's extensions; it drops any other key of the body."""
        payload = super().parse_json(data)
        if isinstance(payload, dict) and DOCUMENT_ID in payload:
            extensions = payload.get("extensions")
            if extensions is None or isinstance(extensions, dict):
                payload["extensions"] = {**(extensions or {}), DOCUMENT_ID: payload[DOCUMENT_ID]}
        return payload

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        return self.context_for(request.scope)

    def context_for(self, scope: Scope) -> Context:
        state = scope.get("state", {})
        principal = state.get("principal")
        if principal is not None and "log_fields" in state:
            state["log_fields"]["role"] = principal.role.value
        return Context(
            runtime=self.runtime,
            principal=principal,
            request_id=state.get("request_id", "-"),
            log_fields=state.get("log_fields", {}),
            group_commit=self.group_commit,
            verified_keys=self.verified_keys,
        )

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry answers a request it refuses before running with plain text, which may
        name what the client sent (``Unknown operation named "..."``): JSON with a code instead."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as refused:
            cause = refused.__cause__
            if isinstance(cause, REQUEST_ERRORS):
                code, message = request_error(cause)
            else:
                code, message = ErrorCode.BAD_REQUEST, scrub_message(refused.reason)
            return _json_errors([{"message": message, "extensions": {"code": code}}], refused.status_code)

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        """503 when the database was away, so that clients and load balancers retry."""
        response = super().create_response(response_data, sub_response)
        results = response_data if isinstance(response_data, list) else [response_data]
        if any(_has_code(result, ErrorCode.SERVICE_UNAVAILABLE) for result in results):
            response.status_code = 503
        return response


class GraphQLEndpoint:
    def __init__(self, runtime: Runtime, view: StrawberryView) -> None:
        if not isinstance(view.schema, AudienceSchema):
            raise TypeError("the view serves a schema not built by schema.build_schema")
        self.runtime = runtime
        self.view = view
        self.schema = view.schema
        self.verified_keys = view.verified_keys
        self.anonymous_allowed = runtime.settings.demo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer_token(scope)
        try:
            principal = await self._authenticate(token) if token else None
        except Exception as error:
            if not is_unavailable(error):
                raise
            await _database_away(scope, receive, send, error)
            return
        asks_for_ide = scope["type"] == "http" and scope.get("method") == "GET"
        if principal is None and (token or not (self.anonymous_allowed or asks_for_ide)):
            await _unauthenticated(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        if principal is not None and is_json_post(scope):
            body = await read_body(receive)
            if await self._answer_registered(scope, receive, send, body):
                return
            receive = replaying(body, receive)
        await self.view(scope, receive, send)

    async def _authenticate(self, token: str) -> Principal | None:
        cached = self.verified_keys.get(token)
        if cached is not None:
            return cached

        def check() -> Principal | None:
            with self.runtime.sessions() as session:
                return api_keys.authenticate(session, token)

        principal = await run_in_threadpool(check)
        if principal is not None:
            self.verified_keys.put(token, principal)
        return principal

    async def _answer_registered(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> bool:
        """Answer a request for a registered document directly; False to leave it to the view."""
        request = registered_request(body)
        if request is None:
            return False
        result = await registered_execution.run(
            self.schema,
            request.document,
            context=self.view.context_for(scope),
            variables=request.variables,
            operation_name=request.operation_name,
        )
        if result is None:
            return False
        answer: dict[str, object] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        unavailable = _has_code(cast("GraphQLHTTPResponse", answer), ErrorCode.SERVICE_UNAVAILABLE)
        response = Response(
            orjson.dumps(answer), status_code=503 if unavailable else 200, media_type="application/json"
        )
        await response(scope, receive, send)
        return True


def _has_code(result: GraphQLHTTPResponse, code: str) -> bool:
    """Strawberry types formatted errors as ``object``; they are ``GraphQLFormattedError`` dicts."""
    errors = cast("list[GraphQLFormattedError]", result.get("errors") or [])
    return any((error.get("extensions") or {}).get("code") == code for error in errors)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = value.decode("latin-1")
            if header.lower().startswith(BEARER):
                return header[len(BEARER) :].strip()
            return header.strip()
    return None


async def _unauthenticated(scope: Scope, receive: Receive, send: Send) -> None:
    response = _json_errors([UNAUTHENTICATED_ERROR], 401)
    response.headers["www-authenticate"] = "Bearer"
    await _deny(scope, receive, send, response, close_code=4401)


async def _database_away(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
    """The key could not be looked up: neither refused nor let in, but asked to come back."""
    request_id = scope.get("state", {}).get("request_id", "-")
    response = _json_errors([unavailable_error(request_id, error).formatted], 503)
    await _deny(scope, receive, send, response, close_code=1013)  # 1013: "try again later"


async def _deny(scope: Scope, receive: Receive, send: Send, response: Response, *, close_code: int) -> None:
    """Answer as over HTTP, a WebSocket handshake included: a close before ``accept`` reaches the
    client as a bare 403, which cannot tell "refused" from "come back later". A server without
    the ASGI denial-response extension gets the socket accepted, then closed with ``close_code``."""
    if scope["type"] != "websocket":
        await response(scope, receive, send)
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        # The request-id middleware tags only HTTP answers.
        response.headers["x-request-id"] = scope.get("state", {}).get("request_id", "-")
        await response(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": close_code})


def _json_errors(errors: list[GraphQLFormattedError], status_code: int) -> Response:
    return Response(json.dumps({"errors": errors}).encode(), status_code=status_code, media_type="application/json")


def build_view(runtime: Runtime, schema: Any) -> StrawberryView:
    return StrawberryView(
        runtime,
        schema=schema,
        graphql_ide="graphiql" if runtime.settings.graphiql_enabled else None,
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    )
