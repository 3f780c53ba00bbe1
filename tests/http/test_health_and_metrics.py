from __future__ import annotations

from pathlib import Path

import httpx

from privacy.keyring import Keyring
from server.auth.principal import Role
from server.storage import migrate
from server.storage.engine import build_engine
from tests.support.live_server import LiveServer, start_server


def test_healthz_and_readyz(live_server: LiveServer) -> None:
    assert httpx.get(f"{live_server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_server.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_readyz_reports_unavailable_when_migrations_lag(tmp_path: Path, keyring: Keyring) -> None:
    url = f"sqlite:///{tmp_path / 'lagging.db'}"
    engine = build_engine(url)
    migrate.upgrade(engine)
    server = start_server(directory=tmp_path, database_url=url, keyring=keyring)
    try:
        migrate.downgrade(engine, "base")
        response = httpx.get(f"{server.base_url}/readyz")
        assert response.status_code == 503
        assert "migrations" in response.json()["detail"]
    finally:
        server.stop()
        engine.dispose()


def test_metrics_count_operations_by_name_never_by_argument(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    marker = "ana.metrics@example.org"
    live_server.graphql("query PartnersForMetrics { partners { name } }", token=token, variables={"n": marker})
    live_server.graphql(
        f'mutation {{ createPartner(name: "{marker}", purposes: [ANALYTICS]) {{ errors {{ code }} }} }}', token=token
    )
    text = httpx.get(f"{live_server.base_url}/metrics").text
    assert 'audience_graphql_operations_total{operation="PartnersForMetrics",outcome="ok"}' in text
    assert "audience_graphql_operation_seconds_bucket" in text
    assert marker not in text
    assert "example.org" not in text


def test_metrics_can_require_a_token(tmp_path: Path, keyring: Keyring, sqlite_template: Path) -> None:
    from tests.support.databases import copy_sqlite

    url = copy_sqlite(sqlite_template, tmp_path / "audience.db")
    server = start_server(directory=tmp_path, database_url=url, keyring=keyring, metrics_token="s3cret-scrape")
    try:
        assert httpx.get(f"{server.base_url}/metrics").status_code == 401
        assert httpx.get(f"{server.base_url}/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        allowed = httpx.get(f"{server.base_url}/metrics", headers={"authorization": "Bearer s3cret-scrape"})
        assert allowed.status_code == 200
        assert "audience_http_requests_total" in allowed.text
    finally:
        server.stop()
