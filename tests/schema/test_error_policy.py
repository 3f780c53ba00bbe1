"""What a client may learn from an error: a code and an actionable line, never a stored value."""

from __future__ import annotations

import logging

import pytest
from graphql import GraphQLError

from schema.errors import scrub_message, shape_errors
from server.observability.logs import JsonLineFormatter

PII = "ana.lopez@example.org"


def test_unexpected_exception_is_masked_and_logged_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    error = ValueError(f"duplicate key value violates unique constraint: Key (email)=({PII})")
    wrapped = GraphQLError(str(error), original_error=error, path=["createPartner"])
    with caplog.at_level(logging.DEBUG):
        [shaped] = shape_errors([wrapped], "req-12345678")
    assert shaped.message == "internal error; quote the request id to the operator"
    assert shaped.extensions == {"code": "INTERNAL_ERROR", "requestId": "req-12345678"}
    lines = [JsonLineFormatter().format(record) for record in caplog.records]
    assert any('"error_type":"ValueError"' in line for line in lines)
    assert not any(PII in line for line in lines)


@pytest.mark.parametrize(
    "message",
    [
        f"Variable '$email' got invalid value '{PII}'; String cannot represent a non string value",
        f'Expected value of type "Int!", found "{PII}".',
        f"Argument 'name' has invalid value {{email: \"{PII}\"}}.",
        f'Field "viewer" argument "x" of type "[String]" got ["{PII}"].',
    ],
)
def test_validation_messages_never_echo_values(message: str) -> None:
    [shaped] = shape_errors([GraphQLError(message)], "req")
    assert PII not in shaped.message
    assert "example.org" not in scrub_message(message)
    assert shaped.extensions is not None
    assert shaped.extensions["code"] in {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}


def test_errors_with_a_code_keep_it() -> None:
    [shaped] = shape_errors([GraphQLError("not permitted", extensions={"code": "FORBIDDEN"})], "req")
    assert (shaped.message, shaped.extensions) == ("not permitted", {"code": "FORBIDDEN"})


@pytest.mark.parametrize(
    "message",
    [
        "String cannot represent a non string value: zq123",
        "Expected value of type 'IdentifierInput' not to include unknown field 'zq', found: { kind: EMAIL, zq: 1 }.",
        "Variable '$s' has invalid value: Int cannot represent non-integer value: 'zq'",
        "Expected value of type 'IdentifierInput' not to include unknown field 'zq', found: {\n  zqtop: 1\n"
        '  identifier: { kind: EMAIL, value: "a" }.',
        "Expected value of type 'IdentifierInput' not to include unknown field 'zq'. Did you mean 'kind'? Found: "
        "{ kind: EMAIL, zqnest: 5, value: 1 }.",
        "Variable '$i' has invalid value at .kind: Enum 'Kind' cannot represent non-string value: zq123.",
        "Fields 'zq' conflict because 'viewer' and 'partners' are different fields.",
        "Cannot query field 'viewr' on type 'Query'. Did you mean 'viewer'?",
    ],
)
def test_shaping_twice_changes_nothing(message: str) -> None:
    """Strawberry's validation cache hands the same error list to every request with that document."""
    known = frozenset({"viewer", "partners", "Query", "IdentifierInput"})
    [once] = shape_errors([GraphQLError(message)], "req", known, {"zq123", "zq"})
    [twice] = shape_errors([once], "req", known, {"zq123", "zq"})
    assert (twice.message, twice.extensions) == (once.message, once.extensions)
    assert "zq" not in once.message


def test_names_the_client_sent_are_scrubbed_wherever_printed_even_common_words() -> None:
    """A made-up name equal to a word of the message, or of the placeholder, stays harmless."""
    message = "Unknown thing zqname, a non string value: 3."
    sent = {"zqname", "value", "thing"}
    [once] = shape_errors([GraphQLError(message)], "req", frozenset(), sent)
    [twice] = shape_errors([once], "req", frozenset(), sent)
    assert "zqname" not in once.message
    assert twice.message == once.message
