"""Safe defaults at the HTTP edge: limits with clear codes, POST only, introspection per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privacy.keyring import Keyring
from server.auth.principal import Role
from tests.support.databases import copy_sqlite
from tests.support.live_server import LiveServer, serving


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


@pytest.fixture(scope="module")
def analyst(live_server: LiveServer) -> str:
    return live_server.issue_key(Role.ANALYST)


@pytest.fixture(scope="module")
def shallow_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, keyring: Keyring
) -> Iterator[LiveServer]:
    """The schema is shallow today, so depth is tested against a server with a depth limit of 1."""
    directory = tmp_path_factory.mktemp("shallow")
    url = copy_sqlite(sqlite_template, directory / "audience.db")
    with serving(directory=directory, database_url=url, keyring=keyring, max_query_depth="1") as server:
        yield server


def test_too_deep_query_is_refused(shallow_server: LiveServer) -> None:
    token = shallow_server.issue_key(Role.COMPLIANCE)
    assert codes(shallow_server.graphql("{ auditLog { seq } }", token=token)) == []
    assert codes(shallow_server.graphql("{ auditLog { details { key } } }", token=token)) == ["QUERY_TOO_DEEP"]


def test_too_many_aliases_is_refused(live_server: LiveServer, analyst: str) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"
    assert codes(live_server.graphql(query, token=analyst)) == ["TOO_MANY_ALIASES"]


def test_too_many_tokens_is_refused(live_server: LiveServer, analyst: str) -> None:
    query = "{ viewer { " + " ".join(["role"] * 6000) + " } }"
    assert codes(live_server.graphql(query, token=analyst)) == ["TOO_MANY_TOKENS"]


def test_too_many_root_fields_is_refused(live_server: LiveServer, analyst: str) -> None:
    query = "{ " + " ".join(f"v{i}: viewer {{ role }}" for i in range(11)) + " }"
    assert codes(live_server.graphql(query, token=analyst)) == ["TOO_MANY_ROOT_FIELDS"]


def test_root_fields_hidden_in_fragments_are_counted(live_server: LiveServer, analyst: str) -> None:
    first = " ".join(f"a{i}: viewer {{ role }}" for i in range(6))
    second = " ".join(f"b{i}: viewer {{ role }}" for i in range(6))
    query = f"query {{ ...a ...b }} fragment a on Query {{ {first} }} fragment b on Query {{ {second} }}"
    assert codes(live_server.graphql(query, token=analyst)) == ["TOO_MANY_ROOT_FIELDS"]


def test_oversized_body_is_refused_before_it_is_read(live_server: LiveServer, analyst: str) -> None:
    payload = b'{"query": "{ viewer { role } }", "pad": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    response = httpx.post(
        f"{live_server.base_url}/graphql",
        content=payload,
        headers={"authorization": f"Bearer {analyst}", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert codes(response) == ["REQUEST_TOO_LARGE"]


def test_queries_over_get_are_refused(live_server: LiveServer, analyst: str) -> None:
    response = httpx.get(
        f"{live_server.base_url}/graphql",
        params={"query": "{ viewer { role } }"},
        headers={"authorization": f"Bearer {analyst}"},
    )
    assert response.status_code in {400, 405}
    assert "viewer" not in response.text


def test_graphiql_is_off_outside_the_demo(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.base_url}/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in response.text.lower()


def test_partner_keys_cannot_introspect(live_server: LiveServer) -> None:
    partner = live_server.issue_key(Role.PARTNER)
    for query in ("{ __schema { types { name } } }", '{ __type(name: "Query") { fields { name } } }'):
        response = live_server.graphql(query, token=partner)
        assert response.json()["data"] is None
        assert set(codes(response)) == {"INTROSPECTION_DISABLED"}
    assert live_server.graphql("{ __typename }", token=partner).json()["data"] == {"__typename": "Query"}


def test_internal_roles_can_introspect(live_server: LiveServer, analyst: str) -> None:
    response = live_server.graphql("{ __schema { queryType { name } } }", token=analyst)
    assert response.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}


def test_validation_errors_give_no_schema_suggestions(live_server: LiveServer, analyst: str) -> None:
    response = live_server.graphql("{ viewr { role } }", token=analyst)
    message = response.json()["errors"][0]["message"]
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean" not in message


def test_syntax_errors_have_a_code(live_server: LiveServer, analyst: str) -> None:
    assert codes(live_server.graphql("{ viewer { role ", token=analyst)) == ["GRAPHQL_PARSE_FAILED"]
