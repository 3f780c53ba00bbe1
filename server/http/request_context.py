"""Per-request id, body-size limit, one structured log line and HTTP metrics.

A pure ASGI middleware (no BaseHTTPMiddleware), so streaming bodies are counted as they
arrive and a request over the limit is refused before it is read whole.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability.metrics import Metrics

logger = logging.getLogger("audience.http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
KNOWN_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})


class BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # One id for the socket's life: errors on it quote this id, as an HTTP answer's would.
            scope.setdefault("state", {}).update(request_id=_request_id(scope), log_fields={})
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        log_fields: dict[str, Any] = {}
        scope.setdefault("state", {}).update(request_id=request_id, log_fields=log_fields)
        status = 500

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            status = 413
            await _send_too_large(send, request_id)
            self._finish(scope, status, started, request_id, log_fields)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counting_receive, tagging_send)
        except BodyTooLarge:
            status = 413
            await _send_too_large(send, request_id)
        finally:
            self._finish(scope, status, started, request_id, log_fields)

    def _finish(self, scope: Scope, status: int, started: float, request_id: str, fields: dict[str, Any]) -> None:
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        self.metrics.http_requests.labels(route, f"{status // 100}xx").inc()
        logger.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope.get("method"),
                "path": route,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **fields,
            },
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
    return secrets.token_hex(8)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(send: Send, request_id: str) -> None:
    body = json.dumps(
        {"errors": [{"message": "request body is too large", "extensions": {"code": "REQUEST_TOO_LARGE"}}]}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode("ascii"))],
        }
    )
    await send({"type": "http.response.body", "body": body})
