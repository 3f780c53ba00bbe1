"""Domain errors as GraphQL data, and the one policy that shapes every error a client sees.

Expected errors are returned in a payload's ``errors`` list with a code. Everything else is
rewritten here: validation messages lose quoted values and schema suggestions (no oracle of
what exists, no echo of input), and unexpected exceptions become ``INTERNAL_ERROR`` with the
request id, their details going only to the server log, without their message text.
"""

from __future__ import annotations

import logging
import re
import traceback
from enum import StrEnum

import strawberry
from graphql import GraphQLError

from schema.permissions import any_role

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
_QUOTED_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"|\{.*\}|\[.*\]', re.DOTALL)
_GOT_VALUE = re.compile(r"got invalid value [^;]*;?")
_PARSE_DETAIL = re.compile(r"^Syntax Error:.*$", re.DOTALL)
_QUOTED_NAME = re.compile(r"'([^']*)'")


def scrub_message(message: str, known_names: frozenset[str] = frozenset()) -> str:
    """Remove anything in a graphql-core message that could echo input or reveal the schema.

    Quoted names survive only when the schema defines them, so a name the client made up
    (which could be anything) is never repeated back.
    """
    message = _SUGGESTION.sub("", message)
    message = _GOT_VALUE.sub("got an invalid value;", message)
    message = _QUOTED_VALUE.sub("<value>", message)
    return _QUOTED_NAME.sub(lambda m: m.group(0) if m.group(1) in known_names else "'<name>'", message).strip()


def classify(error: GraphQLError, known_names: frozenset[str] = frozenset()) -> tuple[str, str]:
    """(code, message) for an error that carries no code of its own."""
    for pattern, code in _LIMIT_CODES:
        if pattern.search(error.message):
            return code, scrub_message(error.message, known_names)
    if _PARSE_DETAIL.match(error.message):
        return ErrorCode.GRAPHQL_PARSE_FAILED, "the document is not valid GraphQL"
    if error.message.startswith("Variable"):
        return ErrorCode.BAD_USER_INPUT, scrub_message(error.message, known_names)
    return ErrorCode.GRAPHQL_VALIDATION_FAILED, scrub_message(error.message, known_names)


def shape_errors(
    errors: list[GraphQLError], request_id: str, known_names: frozenset[str] = frozenset()
) -> list[GraphQLError]:
    """Apply the policy above; called on every result the HTTP view returns."""
    return [_shape(error, request_id, known_names) for error in errors]


def _shape(error: GraphQLError, request_id: str, known_names: frozenset[str]) -> GraphQLError:
    code = (error.extensions or {}).get("code")
    # graphql-core wraps its own input errors (bad variables) as original_error: they are the
    # client's mistake, not ours, so they are classified and scrubbed rather than masked.
    unexpected = error.original_error is not None and not isinstance(error.original_error, GraphQLError)
    if unexpected and code is None:
        return _mask(error, request_id)
    if code is None:
        code, message = classify(error, known_names)
    else:
        message = scrub_message(error.message, known_names)
    return GraphQLError(message, nodes=error.nodes, path=error.path, extensions={"code": code})


def _mask(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    frames = traceback.extract_tb(original.__traceback__) if original is not None else []
    where = " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in reversed(frames[-6:]))
    logger.error(
        "unexpected error",
        extra={"request_id": request_id, "error_type": type(original).__name__, "where": where},
    )
    return GraphQLError(
        "internal error; quote the request id to the operator",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": ErrorCode.INTERNAL_ERROR, "requestId": request_id},
    )
