"""The change feed: polled with a cursor and resumed after an outage, or pushed over
graphql-transport-ws; revoked grants and revoked keys stop it."""

from __future__ import annotations

import json
import time
from typing import Any

from server.partners.cursors import feed_seq
from tests.http.test_websocket_revocation import revoke_over_graphql
from tests.partners import seed
from tests.partners.visitors import changes_page, partner_app, visible_person
from tests.support.live_server import LiveServer
from tests.support.websocket import TransportSocket, transport_socket

SUBSCRIBE = "subscription($after: String) { segmentChanges(after: $after) { cursor kind pseudonym segment } }"


def _entries(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["node"]["kind"], e["node"]["pseudonym"], e["node"]["segment"]) for e in page["edges"]]


def test_the_feed_resumes_from_any_cursor_and_shows_exits(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    partner = partner_app(live_server)
    segment = seed.segment(runtime)
    ana = visible_person(live_server, partner, segment=segment)
    codec = runtime.kit.partner_pseudonyms
    other = visible_person(live_server, partner)  # in another granted segment too, told as it enters
    seed.enter(runtime, segment[0], [other.subject], told=[ana.grant])
    ana_pseudonym = codec.encode(partner.id, ana.subject)

    everything = changes_page(live_server, partner.token, first=1000)
    assert ("ENTER", ana_pseudonym, segment[1]) in _entries(everything)
    first = changes_page(live_server, partner.token, first=1)
    resumed = changes_page(live_server, partner.token, after=first["pageInfo"]["endCursor"], first=1000)
    assert _entries(first) + _entries(resumed) == _entries(everything)

    seed.leave(runtime, segment[0], [ana.subject], told=[ana.grant])
    later = changes_page(live_server, partner.token, after=everything["pageInfo"]["endCursor"])
    assert _entries(later) == [("EXIT", ana_pseudonym, segment[1])]
    idle = changes_page(live_server, partner.token, after=later["pageInfo"]["endCursor"])
    assert idle["edges"] == []
    # The same position, sealed anew (a fresh nonce, under the current key version).
    assert idle["pageInfo"]["endCursor"] != later["pageInfo"]["endCursor"]
    sealer = runtime.kit.token_sealer
    positions = {
        feed_seq(page["pageInfo"]["endCursor"], sealer=sealer, partner_id=partner.id) for page in (later, idle)
    }
    assert len(positions) == 1


def test_a_revoked_grant_leaves_the_feed_at_once_old_entries_included(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    kept, dropped = visible_person(live_server, partner), visible_person(live_server, partner)
    assert {e[2] for e in _entries(changes_page(live_server, partner.token))} == {
        kept.grant.segment,
        dropped.grant.segment,
    }
    seed.revoke(live_server.runtime, dropped.grant)
    assert {e[2] for e in _entries(changes_page(live_server, partner.token))} == {kept.grant.segment}


def test_bad_cursors_and_page_sizes_are_refused(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    visible_person(live_server, partner)
    # "changes:1:1" and "members:1:1:1:v1.A" in the plain form cursors once had, made by hand.
    for cursor in (
        "",
        "not-a-cursor",
        "Y2hhbmdlczoxOjE",
        "Y2hhbmdlczoxOjE=",
        "Y2hhbmdlczoxOjE=x",
        "bWVtYmVyczoxOjE6MTp2MS5B",
    ):
        page = changes_page(live_server, partner.token, after=cursor)
        assert [(e["field"], e["code"]) for e in page["errors"]] == [("after", "BAD_CURSOR")], cursor
        assert cursor not in page["errors"][0]["message"] or cursor == ""
    for first in (0, 1001):
        assert [e["code"] for e in changes_page(live_server, partner.token, first=first)["errors"]] == ["INVALID_FIRST"]


def _next_payloads(
    socket: TransportSocket, operation: str, count: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The next ``count`` messages of ``operation`` (``next`` payloads, or an ``error``/``complete``)."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count:
        message = json.loads(socket.connection.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("id") == operation:
            received.append(message)
            if message["type"] in {"error", "complete"}:
                break
    return received


def _subscribe(socket: TransportSocket, operation: str, after: str | None = None) -> None:
    socket.connection.send(
        json.dumps(
            {"id": operation, "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"after": after}}}
        )
    )


def test_the_subscription_pushes_entries_and_stops_when_the_key_is_revoked(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    partner = partner_app(live_server)
    first = visible_person(live_server, partner)
    with transport_socket(live_server, partner.token) as socket:
        _subscribe(socket, "feed")
        [told] = _next_payloads(socket, "feed", 1)
        assert told["type"] == "next"
        entry = told["payload"]["data"]["segmentChanges"]
        assert (entry["kind"], entry["segment"]) == ("ENTER", first.grant.segment)

        seed.leave(runtime, first.grant.segment_id, [first.subject], told=[first.grant])
        [pushed] = _next_payloads(socket, "feed", 1)
        assert pushed["payload"]["data"]["segmentChanges"]["kind"] == "EXIT"
        assert pushed["payload"]["data"]["segmentChanges"]["pseudonym"] == entry["pseudonym"]

        revoke_over_graphql(live_server, partner.token)
        seed.enter(runtime, first.grant.segment_id, [first.subject], told=[first.grant])
        ended = _next_payloads(socket, "feed", 1)
        assert ended[0]["type"] in {"error", "next"}
        errors = ended[0]["payload"] if ended[0]["type"] == "error" else ended[0]["payload"].get("errors", [])
        assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"], ended
        assert "data" not in ended[0]["payload"] or ended[0]["payload"]["data"] is None


def test_the_subscription_resumes_from_a_cursor_and_refuses_a_bad_or_lent_one(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    visible_person(live_server, partner)
    second = visible_person(live_server, partner)
    first_cursor = changes_page(live_server, partner.token, first=1)["pageInfo"]["endCursor"]
    other = partner_app(live_server)
    visible_person(live_server, other)
    lent = changes_page(live_server, other.token, first=1)["pageInfo"]["endCursor"]
    with transport_socket(live_server, partner.token) as socket:
        _subscribe(socket, "resume", after=first_cursor)
        [resumed] = _next_payloads(socket, "resume", 1)
        assert resumed["payload"]["data"]["segmentChanges"]["segment"] == second.grant.segment
        _subscribe(socket, "bad", after="forged")
        [refused] = _next_payloads(socket, "bad", 1)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_CURSOR"]
        # A real cursor, but sealed for another partner: refused on the socket as over HTTP.
        _subscribe(socket, "lent", after=lent)
        [refused] = _next_payloads(socket, "lent", 1)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_CURSOR"]
        assert lent not in json.dumps(refused)
