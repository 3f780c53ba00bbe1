"""A server for the marketer and end-to-end tests: k at its floor (10), so a cohort of a few dozen
real people shows a count and a small one is suppressed, and a segment worker that polls often."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from privacy.keyring import Keyring
from tests.segments.marketing import K
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with


@pytest.fixture(scope="session")
def marketing_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    with server_with(
        request,
        server_backend,
        tmp_path_factory,
        keyring,
        "marketing",
        anonymity_threshold=str(K),
        segment_poll_seconds="0.2",
    ) as server:
        yield server
