"""Over HTTP with a real server: compliance and admin read a profile; every other role is refused."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.auth.principal import Role
from tests.support.live_server import LiveServer

INGEST = """
mutation($batch: EventBatchInput!) { ingestEvents(batch: $batch) { accepted rejected { index code } } }"""
PROFILE = """
query($identifier: IdentifierInput!) {
  profile(identifier: $identifier) {
    asOf lifecycleStage valueTier botLike
    recency { daysSinceLastEvent daysSinceLastPurchase }
    frequency { events { last7Days last30Days lifetime } purchases { lifetime } }
    monetary { revenueLifetime averageOrderValueLifetime }
    channelMix { channel share }
    repeatPurchases { frequency recency T monetary }
    interests { topic name score lastSeen halfLifeDays counts { type events } }
  }
}"""


def sent(email: str, *, hours_ago: float, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(6)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(),
        "context": {"traits": {"email": email}, "consent": {"purposes": ["analytics", "profiling"]}},
        "properties": {"topics": ["travel"]},
    }
    record.update(fields)
    return record


def identifier(email: str) -> dict[str, Any]:
    return {"identifier": {"kind": "EMAIL", "value": email}}


@pytest.fixture
def person(live_server: LiveServer) -> str:
    email = f"profile.{secrets.token_hex(4)}@example.org"
    events = [
        sent(email, hours_ago=2),
        sent(
            email,
            hours_ago=1,
            type="purchase",
            properties={"topics": ["travel"], "amount": 25.0, "currency": "EUR"},
        ),
    ]
    admin = live_server.issue_key(Role.ADMIN)
    body = live_server.graphql(INGEST, token=admin, variables={"batch": {"events": events}}).json()
    assert body["data"]["ingestEvents"] == {"accepted": 2, "rejected": []}
    return email


@pytest.mark.parametrize("role", [Role.COMPLIANCE, Role.ADMIN], ids=lambda role: role.value)
def test_compliance_and_admin_read_a_profile(live_server: LiveServer, person: str, role: Role) -> None:
    before = datetime.now(UTC)
    body = live_server.graphql(PROFILE, token=live_server.issue_key(role), variables=identifier(person)).json()
    assert "errors" not in body, body
    profile = body["data"]["profile"]
    assert datetime.fromisoformat(profile["asOf"]) >= before - timedelta(seconds=1)
    assert profile["lifecycleStage"] == "NEW"
    assert profile["frequency"] == {
        "events": {"last7Days": 2, "last30Days": 2, "lifetime": 2},
        "purchases": {"lifetime": 1},
    }
    assert profile["monetary"] == {"revenueLifetime": 25.0, "averageOrderValueLifetime": 25.0}
    assert profile["repeatPurchases"]["frequency"] == 0
    assert {share["channel"]: share["share"] for share in profile["channelMix"]}["web"] == 1.0
    [travel] = profile["interests"]
    assert (travel["topic"], travel["name"], travel["halfLifeDays"]) == ("travel", "Travel", 30.0)
    assert sorted((c["type"], c["events"]) for c in travel["counts"]) == [("page_view", 1), ("purchase", 1)]
    assert 0 < travel["score"] < 1
    assert person not in str(body)


@pytest.mark.parametrize("role", [Role.PARTNER, Role.ANALYST, Role.MARKETER], ids=lambda role: role.value)
def test_other_roles_are_refused(live_server: LiveServer, person: str, role: Role) -> None:
    body = live_server.graphql(PROFILE, token=live_server.issue_key(role), variables=identifier(person)).json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]
    assert body["data"] == {"profile": None}


def test_an_unknown_person_reads_as_null(live_server: LiveServer) -> None:
    body = live_server.graphql(
        PROFILE, token=live_server.issue_key(Role.COMPLIANCE), variables=identifier("nobody.at.all@example.org")
    ).json()
    assert body == {"data": {"profile": None}}
