from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from privacy.keyring import Keyring, dumps_keyring, generate_keyring
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine
from tests.support.databases import (
    BACKENDS,
    POSTGRES_ADMIN_URL,
    PostgresServer,
    copy_sqlite,
    migrated_sqlite_template,
    skip_or_fail,
)
from tests.support.live_server import LiveServer, start_server

# Property tests run beside live servers and PostgreSQL on a shared 2-core machine, where any example
# can be held up past Hypothesis's 200 ms deadline, and the first inputs drawn slower than its 1 s
# health check: neither is a failure of the property. A test's own @settings still sets the rest.
hypothesis_settings.register_profile("audience", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("audience")


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return generate_keyring()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template")) as path:
        yield path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(POSTGRES_ADMIN_URL)
    if not server.reachable():
        skip_or_fail("PostgreSQL is not reachable at AUDIENCE_TEST_POSTGRES_URL")
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    name = postgres.create()
    engine = build_engine(postgres.url(name))
    migrate.upgrade(engine)
    engine.dispose()
    return name


def fresh_database_url(request: pytest.FixtureRequest, backend: str, directory: Path) -> Generator[str, None, None]:
    if backend == "sqlite":
        yield copy_sqlite(request.getfixturevalue("sqlite_template"), directory / "audience.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    template: str = request.getfixturevalue("postgres_template")
    name = server.create(template=template)
    try:
        yield server.url(name)
    finally:
        server.drop(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(request, backend, tmp_path)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, keyring: Keyring) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, keyring=SecretStr(dumps_keyring(keyring)))


@pytest.fixture
def runtime(settings: Settings, keyring: Keyring) -> Iterator[Runtime]:
    built = build_runtime(settings, keyring=keyring)
    try:
        yield built
    finally:
        built.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def server_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def live_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    """One real server per backend for the whole run; tests create their own keys and partners."""
    directory = tmp_path_factory.mktemp(f"server-{server_backend}")
    urls = fresh_database_url(request, server_backend, directory)
    server = start_server(directory=directory, database_url=next(urls), keyring=keyring)
    try:
        yield server
    finally:
        server.stop()
        urls.close()
