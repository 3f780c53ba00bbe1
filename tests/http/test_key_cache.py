"""A verified API key is trusted for ``AUDIENCE_API_KEY_CACHE_SECONDS``, and not a moment longer.

The attacker holds a key that leaked and keeps using it while the operator revokes it: revoked in
the worker that serves it, it stops at once; revoked from another process (the CLI), it stops
within the documented bound (docs/configuration.md, *The API key cache and revocation*).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from privacy.keyring import Keyring
from server.auth.principal import Principal, Role
from server.auth.verified_keys import VerifiedKeys
from tests.http.test_websocket_revocation import revoke_with_the_cli
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with

VIEWER = "{ viewer { keyId } }"
CACHE_SECONDS = 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_trusted_until_its_time_is_up() -> None:
    clock = FakeClock()
    keys = VerifiedKeys(ttl_seconds=CACHE_SECONDS, clock=clock)
    principal = Principal("k1", Role.PARTNER, 7, frozenset({"analytics"}))
    keys.put("aud_k1.secret", principal)
    clock.now += CACHE_SECONDS - 0.01
    assert keys.get("aud_k1.secret") == principal
    assert keys.get("aud_k1.other-secret") is None  # the whole token is the key, not the id
    clock.now += 0.01
    assert keys.get("aud_k1.secret") is None


def test_forget_drops_the_key_and_zero_keeps_nothing() -> None:
    keys = VerifiedKeys(ttl_seconds=60)
    keys.put("aud_k1.a", Principal("k1", Role.ADMIN))
    keys.put("aud_k2.b", Principal("k2", Role.ADMIN))
    keys.forget("k1")
    assert keys.get("aud_k1.a") is None
    assert keys.get("aud_k2.b") == Principal("k2", Role.ADMIN)
    off = VerifiedKeys(ttl_seconds=0)
    off.put("aud_k1.a", Principal("k1", Role.ADMIN))
    assert off.get("aud_k1.a") is None


def test_the_map_stays_bounded() -> None:
    keys = VerifiedKeys(ttl_seconds=60, max_entries=3)
    for number in range(10):
        keys.put(f"aud_{number}.s", Principal(str(number), Role.ANALYST))
    assert sum(keys.get(f"aud_{number}.s") is not None for number in range(10)) <= 3


@pytest.fixture(scope="module")
def caching_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    with server_with(
        request, server_backend, tmp_path_factory, keyring, "key-cache", api_key_cache_seconds=str(CACHE_SECONDS)
    ) as server:
        yield server


def test_a_key_revoked_by_the_cli_stops_within_the_cache_time(caching_server: LiveServer) -> None:
    token = caching_server.issue_key(Role.PARTNER)
    assert caching_server.graphql(VIEWER, token=token).status_code == 200  # verified, now cached
    revoke_with_the_cli(caching_server, token)
    time.sleep(CACHE_SECONDS)  # the bound, counted from after the revocation: the entry is older
    refused = caching_server.graphql(VIEWER, token=token)
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
