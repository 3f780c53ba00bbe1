"""Partners and first-party sources send events over GraphQL, in batches, idempotently."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from server.auth.principal import Role
from tests.support.live_server import LiveServer

INGEST = """
mutation($batch: EventBatchInput!) {
  ingestEvents(batch: $batch) {
    received accepted duplicates newSubjects droppedTopics droppedLabels
    rejected { index code message }
    errors { field code message }
  }
}"""


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(6)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "anonymousId": f"dev-{secrets.token_hex(6)}",
        "context": {"consent": {"purposes": ["analytics"], "gpc": False}},
        "properties": {"topics": ["sports/football"], "category": "Travel"},
    }
    base.update(overrides)
    return base


def test_a_batch_lands_and_rejects_only_the_bad_records(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    events = [
        event(),
        event(timestamp="yesterday-ish"),
        event(context={"traits": {"email": "not-an-email"}, "consent": {"purposes": ["analytics"]}}),
        event(type="teleport"),
        event(context={"consent": {"purposes": ["world-domination"]}}),
        event(properties={"topics": ["no/such-topic", "sports/football"], "campaign": "Summer sale for Ana!"}),
        event(context=None),
    ]
    body = live_server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()
    result = body["data"]["ingestEvents"]
    assert result["received"] == 7
    assert result["accepted"] == 2
    codes = {r["index"]: r["code"] for r in result["rejected"]}
    assert codes == {
        1: "INVALID_TIMESTAMP",
        2: "INVALID_EMAIL",
        3: "UNKNOWN_EVENT_TYPE",
        4: "UNKNOWN_PURPOSE",
        6: "NO_CONSENT",
    }
    assert result["droppedTopics"] == 1
    assert result["droppedLabels"] == 1
    assert "not-an-email" not in str(body)
    assert "teleport" not in str(body)


def test_the_same_batch_twice_adds_nothing(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    batch = {"events": [event() for _ in range(20)]}
    first = live_server.graphql(INGEST, token=token, variables={"batch": batch}).json()["data"]["ingestEvents"]
    second = live_server.graphql(INGEST, token=token, variables={"batch": batch}).json()["data"]["ingestEvents"]
    assert (first["accepted"], first["duplicates"]) == (20, 0)
    assert (second["accepted"], second["duplicates"], second["newSubjects"]) == (0, 20, 0)


def test_a_batch_over_the_limit_is_refused_whole(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    batch = {"events": [event() for _ in range(10_001)]}
    result = live_server.graphql(INGEST, token=token, variables={"batch": batch}).json()["data"]["ingestEvents"]
    assert result["accepted"] == 0
    assert [e["code"] for e in result["errors"]] == ["TOO_LARGE"]


def test_admin_names_the_source_and_a_bad_source_is_refused(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    ok = live_server.graphql(INGEST, token=token, variables={"batch": {"source": "web", "events": [event()]}})
    assert ok.json()["data"]["ingestEvents"]["accepted"] == 1
    bad = live_server.graphql(INGEST, token=token, variables={"batch": {"source": "Ana's laptop", "events": [event()]}})
    assert [e["code"] for e in bad.json()["data"]["ingestEvents"]["errors"]] == ["INVALID_SOURCE"]


def test_partner_user_ids_are_scoped_to_the_sending_partner(live_server: LiveServer) -> None:
    """Two partners' user id "42" are two different people: beta's 42 never lands on alpha's person."""
    from tests.privacy.test_partner_isolation import subjects_of_events

    admin = live_server.issue_key(Role.ADMIN)
    alpha, beta = live_server.issue_key(Role.PARTNER), live_server.issue_key(Role.PARTNER)
    email = f"scoped.{secrets.token_hex(4)}@example.org"
    first_party = event(context={"traits": {"email": email}, "consent": {"purposes": ["analytics"]}})
    live_server.graphql(INGEST, token=admin, variables={"batch": {"events": [first_party]}})
    from_alpha = event(
        anonymousId=None,
        context={"traits": {"email": email}, "partnerUserId": "42", "consent": {"purposes": ["analytics"]}},
    )
    live_server.graphql(INGEST, token=alpha, variables={"batch": {"events": [from_alpha]}})
    from_beta = event(anonymousId=None, context={"partnerUserId": "42", "consent": {"purposes": ["analytics"]}})
    live_server.graphql(INGEST, token=beta, variables={"batch": {"events": [from_beta]}})
    owners = subjects_of_events(live_server, first_party["messageId"], from_alpha["messageId"], from_beta["messageId"])
    assert owners[from_alpha["messageId"]] == owners[first_party["messageId"]]
    assert owners[from_beta["messageId"]] != owners[first_party["messageId"]]


def test_a_record_of_the_wrong_shape_is_rejected_alone(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    events = [
        event(),
        event(properties={"amount": "twelve euros"}),
        "not an object",
        event(context={"consent": {"purposes": "analytics"}}),
        event(messageId={"id": 12345}),
        event(messageId=12345),
    ]
    result = live_server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()
    payload = result["data"]["ingestEvents"]
    assert payload["accepted"] == 2, "numbers are read as text, as in an NDJSON file"
    assert {r["index"]: r["code"] for r in payload["rejected"]} == {
        1: "INVALID_RECORD",
        2: "INVALID_RECORD",
        3: "INVALID_RECORD",
        4: "INVALID_RECORD",
    }
    assert "twelve" not in str(result)


def test_unknown_properties_are_counted_and_never_stored(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    chatty = event(
        searchQuery="flights for Ana Lopez to Lima",
        context={"consent": {"purposes": ["analytics"]}, "ip": "203.0.113.7", "traits": {"name": "Ana Lopez"}},
        properties={"topics": ["sports/football"], "note": "called about her divorce", "amount": None},
    )
    body = live_server.graphql(
        "mutation($b: EventBatchInput!) { ingestEvents(batch: $b) { accepted droppedFields } }",
        token=token,
        variables={"b": {"events": [chatty, event()]}},
    ).json()
    assert body["data"]["ingestEvents"] == {"accepted": 2, "droppedFields": 4}
    with live_server.runtime.sessions() as session:
        from sqlalchemy import text

        dump = " ".join(str(row) for row in session.execute(text("SELECT * FROM events")).all())
    assert "divorce" not in dump
    assert "Lima" not in dump
