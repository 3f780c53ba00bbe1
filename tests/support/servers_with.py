"""A live server of its own, on a fresh database of the fixture's backend, with settings of its own:
for the module- and session-scoped fixtures that test one setting over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from privacy.keyring import Keyring
from tests.conftest import fresh_database_url
from tests.support.live_server import LiveServer, serving


@contextmanager
def server_with(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    keyring: Keyring,
    label: str,
    **settings: str,
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp(f"{label}-{backend}")
    urls = fresh_database_url(request, backend, directory)
    try:
        with serving(directory=directory, database_url=next(urls), keyring=keyring, **settings) as server:
            yield server
    finally:
        urls.close()
