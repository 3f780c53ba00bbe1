"""Domain errors as GraphQL data, and the one policy that shapes every error a client sees.

Expected errors are returned in a payload's ``errors`` list with a code. Everything else is
rewritten here: validation messages lose the values and names the client sent and schema
suggestions (no oracle of what exists, no echo of input), a database that is away becomes
``SERVICE_UNAVAILABLE`` and anything else unexpected ``INTERNAL_ERROR``, both with the request id,
their details going only to the server log, without their message text.

``schema.error_boundary`` applies the policy where Strawberry hands every error list over,
whatever the transport (HTTP, graphql-transport-ws), so no transport can skip it;
``request_error`` words the errors Strawberry raises before there is a result (an unknown
``operationName``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.error import GraphQLFormattedError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from schema.permissions import any_role
from server.observability.logs import failure_fields
from server.storage.availability import is_unavailable

logger = logging.getLogger("audience.graphql")


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    TOO_MANY_ROOT_FIELDS = "TOO_MANY_ROOT_FIELDS"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    BAD_REQUEST = "BAD_REQUEST"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    TRUSTED_DOCUMENT_REQUIRED = "TRUSTED_DOCUMENT_REQUIRED"


UNAUTHENTICATED_ERROR: GraphQLFormattedError = {
    "message": "authentication required",
    "extensions": {"code": ErrorCode.UNAUTHENTICATED},
}


@strawberry.type(description="An expected, actionable error: which field, which rule; never the value.")
class DomainError:
    field: str | None = strawberry.field(extensions=any_role())
    code: str = strawberry.field(extensions=any_role())
    message: str = strawberry.field(extensions=any_role())


_LIMIT_CODES = (
    (re.compile(r"exceeds maximum operation depth"), ErrorCode.QUERY_TOO_DEEP),
    (re.compile(r"[Aa]liases"), ErrorCode.TOO_MANY_ALIASES),
    (re.compile(r"more than \d+ tokens"), ErrorCode.TOO_MANY_TOKENS),
    (re.compile(r"introspection", re.IGNORECASE), ErrorCode.INTROSPECTION_DISABLED),
)
_SUGGESTION = re.compile(r"\s*Did you mean .*$", re.DOTALL)
# "Variable '$v' has invalid value at .a: <a scalar's message>": the nested message is kept.
_HAS_INVALID = re.compile(r"has invalid value(?: at [^:]*)?: ")
# graphql-core prints the offending value last, after its first "value: " or "found: ": "...non
# string value: X", "..., found: {a: 1}.". Everything from there on goes, keys of a printed object
# (which may be names the client made up) included.
_VALUE_TAIL = re.compile(r"((?:value|found): ).*?(\.?)$", re.DOTALL | re.IGNORECASE)
_QUOTED_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"|\{.*\}|\[.*\]', re.DOTALL)
_GOT_VALUE = re.compile(r"got invalid value [^;]*;?")
_PARSE_DETAIL = re.compile(r"^Syntax Error:.*$", re.DOTALL)
_QUOTED_NAME = re.compile(r"'([^']*)'")
# Shorter values cannot be told from the words of a message ("a non string value").
_MIN_SENT_VALUE = 3


def scrub_message(message: str, known_names: frozenset[str] = frozenset(), sent_values: Iterable[str] = ()) -> str:
    """Remove anything in a graphql-core message that could echo input or reveal the schema.

    Quoted names survive only when the schema defines them, so a name the client made up
    (which could be anything) is never repeated back. ``sent_values`` (the literals, variable
    values and names of the request) are a last net for a template that prints one elsewhere,
    unquoted; the ``<value>`` placeholders themselves are left alone, so shaping twice is a no-op.
    """
    message = _SUGGESTION.sub("", message)
    message = _GOT_VALUE.sub("got an invalid value;", message)
    message = _HAS_INVALID.sub("has an invalid value; ", message)
    message = _VALUE_TAIL.sub(r"\1<value>\2", message)
    message = _QUOTED_VALUE.sub("<value>", message)
    message = _QUOTED_NAME.sub(lambda m: m.group(0) if m.group(1) in known_names else "'<name>'", message)
    for value in sorted(set(sent_values) - known_names, key=len, reverse=True):
        if len(value) >= _MIN_SENT_VALUE:
            message = re.sub(rf"(?<![\w<]){re.escape(value)}(?![\w>])", "<value>", message)
    return message.strip()


def classify(
    error: GraphQLError, known_names: frozenset[str] = frozenset(), sent_values: Iterable[str] = ()
) -> tuple[str, str]:
    """(code, message) for an error that carries no code of its own."""
    for pattern, code in _LIMIT_CODES:
        if pattern.search(error.message):
            return code, scrub_message(error.message, known_names, sent_values)
    if _PARSE_DETAIL.match(error.message):
        return ErrorCode.GRAPHQL_PARSE_FAILED, "the document is not valid GraphQL"
    if error.message.startswith("Variable"):
        return ErrorCode.BAD_USER_INPUT, scrub_message(error.message, known_names, sent_values)
    return ErrorCode.GRAPHQL_VALIDATION_FAILED, scrub_message(error.message, known_names, sent_values)


class DocumentNotFound(MissingQueryError):
    """The request names a registered document this key cannot run: unknown, malformed or another
    partner's, all alike. Raised before Strawberry parses, where it answers a missing document."""


# Raised by Strawberry before there is a result; their own text names the operation sent.
REQUEST_ERRORS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def request_error(error: Exception) -> tuple[str, str]:
    """(code, message) for one of ``REQUEST_ERRORS``, worded without what the client sent."""
    if isinstance(error, DocumentNotFound):
        return ErrorCode.PERSISTED_QUERY_NOT_FOUND, "no registered document with this id for this key"
    if isinstance(error, CannotGetOperationTypeError):
        if error.operation_name is None:
            return ErrorCode.GRAPHQL_VALIDATION_FAILED, "the document does not say which operation to run"
        return ErrorCode.GRAPHQL_VALIDATION_FAILED, "operationName names no operation of the document"
    if isinstance(error, InvalidOperationTypeError):
        return ErrorCode.BAD_REQUEST, "this operation type is not allowed on this transport"
    return ErrorCode.BAD_REQUEST, "the request carries no GraphQL document"


def shape_errors(
    errors: list[GraphQLError],
    request_id: str,
    known_names: frozenset[str] = frozenset(),
    sent_values: Iterable[str] = (),
) -> list[GraphQLError]:
    """Apply the policy above to every error of one result."""
    sent = frozenset(sent_values)
    return [_shape(error, request_id, known_names, sent) for error in errors]


def _shape(error: GraphQLError, request_id: str, known_names: frozenset[str], sent: frozenset[str]) -> GraphQLError:
    code = (error.extensions or {}).get("code")
    original = error.original_error
    if isinstance(original, REQUEST_ERRORS):
        code, message = request_error(original)
        return GraphQLError(message, extensions={"code": code})
    # graphql-core wraps its own input errors (bad variables) as original_error: they are the
    # client's mistake, not ours, so they are classified and scrubbed rather than masked.
    if original is not None and not isinstance(original, GraphQLError) and code is None:
        if is_unavailable(original):
            return unavailable_error(request_id, original, nodes=error.nodes, path=error.path)
        return _mask(error, request_id)
    if code is None:
        code, message = classify(error, known_names, sent)
    else:
        message = scrub_message(error.message, known_names, sent)
    return GraphQLError(message, nodes=error.nodes, path=error.path, extensions={"code": code})


def unavailable_error(request_id: str, cause: BaseException, **where: Any) -> GraphQLError:
    """The database is away (unreachable, timed out, full): the client should retry later."""
    _log_unexpected("database unavailable", request_id, cause)
    return GraphQLError(
        "the database is not available; retry later, quoting the request id if it lasts",
        extensions={"code": ErrorCode.SERVICE_UNAVAILABLE, "requestId": request_id},
        **where,
    )


def _mask(error: GraphQLError, request_id: str) -> GraphQLError:
    _log_unexpected("unexpected error", request_id, error.original_error)
    return GraphQLError(
        "internal error; quote the request id to the operator",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": ErrorCode.INTERNAL_ERROR, "requestId": request_id},
    )


def _log_unexpected(event: str, request_id: str, original: BaseException | None) -> None:
    """Type and place only: a driver's message text can quote the values of a statement."""
    logger.error(event, extra={"request_id": request_id, **failure_fields(original)})
