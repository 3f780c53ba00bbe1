"""What the README promises about requests without a key, in demo mode as outside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from privacy.keyring import Keyring
from server.auth.principal import Role
from tests.support.databases import copy_sqlite
from tests.support.live_server import LiveServer, serving
from tests.support.websocket import transport_socket


@pytest.fixture(scope="module")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, keyring: Keyring
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("demo-mode")
    url = copy_sqlite(sqlite_template, directory / "audience.db")
    with serving(directory=directory, database_url=url, keyring=keyring, demo="true") as server:
        yield server


def test_outside_the_demo_a_request_without_a_key_gets_401(live_server: LiveServer) -> None:
    response = live_server.graphql("{ __schema { queryType { name } } }")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_in_the_demo_a_request_without_a_key_reads_the_schema_and_no_data(demo_server: LiveServer) -> None:
    schema = demo_server.graphql("{ __schema { queryType { name } } }")
    assert schema.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    fields = demo_server.graphql("{ viewer { keyId } partners { name } }")
    assert fields.status_code == 200
    assert fields.json()["data"] is None
    assert {error["extensions"]["code"] for error in fields.json()["errors"]} == {"UNAUTHENTICATED"}
    with transport_socket(demo_server, None) as socket:
        outcome = socket.run("{ partners { name } }")
    assert outcome.data == []
    assert set(outcome.codes) == {"UNAUTHENTICATED"}


def test_in_the_demo_a_wrong_or_revoked_key_still_gets_401(demo_server: LiveServer) -> None:
    admin = demo_server.issue_key(Role.ADMIN)
    victim = demo_server.issue_key(Role.ANALYST)
    key_id = victim.split("_", 1)[1].split(".", 1)[0]
    demo_server.graphql(f'mutation {{ revokeApiKey(keyId: "{key_id}") {{ revoked }} }}', token=admin)
    for token in (victim, admin[:-4] + "AAAA"):
        assert demo_server.graphql("{ __schema { queryType { name } } }", token=token).status_code == 401
