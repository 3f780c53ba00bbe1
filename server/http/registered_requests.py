"""Which POSTs to /graphql name a registered document and nothing else, read from the body once.

Such a request is answered without Strawberry's HTTP view (``schema.registered_execution``). The
endpoint reads the body to tell; any request it then passes on gets the same body replayed.
Only small JSON bodies are decoded here: a lookup by id is a few hundred bytes, and a large body
(a batch of events sent by id) goes to the view undecoded, so it is never decoded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope

from schema.trusted_documents.lookup import DocumentRequest, requested_document

__all__ = ["MAX_DIRECT_BODY", "RegisteredRequest", "is_json_post", "read_body", "registered_request", "replaying"]

MAX_DIRECT_BODY = 64 * 1024
_MARKERS = (b"documentId", b"persistedQuery")


@dataclass(frozen=True, slots=True)
class RegisteredRequest:
    document: DocumentRequest
    variables: dict[str, Any] | None
    operation_name: str | None


def is_json_post(scope: Scope) -> bool:
    if scope["type"] != "http" or scope.get("method") != "POST":
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


def registered_request(body: bytes) -> RegisteredRequest | None:
    """The request when the body names a document, carries no text, and has well-formed variables."""
    if len(body) > MAX_DIRECT_BODY or not any(marker in body for marker in _MARKERS):
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("query"):
        return None
    document = requested_document(payload)
    variables, name = payload.get("variables"), payload.get("operationName")
    if document is None or not isinstance(variables, dict | None) or not isinstance(name, str | None):
        return None
    return RegisteredRequest(document, variables, name)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: whatever came is what there is
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands over ``body`` first, then whatever the connection sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
