"""Each request kind end to end over HTTP, as the compliance team works: file, verify, carry out.

A real server per backend; the person is sent as events over GraphQL like any first-party source.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from server.auth.principal import Role
from tests.support.live_server import LiveServer

INGEST = """
mutation($batch: EventBatchInput!) {
  ingestEvents(batch: $batch) { accepted rejected { index code } }
}"""
FILE = """
mutation($kind: RequestKind!, $email: String!) {
  fileRequest(input: {kind: $kind, identifier: {kind: EMAIL, value: $email}}) {
    request { id kind status identifierKind receivedAt dueAt overdue filedBy }
    errors { field code message }
  }
}"""
VERIFY = """
mutation($id: Int!) {
  verifyRequest(id: $id, method: "email-challenge", reference: "ticket:4711") {
    request { status verifiedBy verificationMethod verificationReference } errors { code }
  }
}"""
EXECUTE = """
mutation($id: Int!) { executeRequest(id: $id) { request { status outcome closedAt } errors { code message } } }"""
RECEIPTS = """
query($id: Int!) {
  erasureReceipts(requestId: $id) { subjects keysDestroyed identifiersSuppressed rowsRemoved { table rows } }
}"""
EXPORT = """
mutation($id: Int!) { exportRequest(id: $id) { request { status outcome } document errors { code } } }"""
CONSENT = """
query($email: String!) { consent(identifier: {kind: EMAIL, value: $email}) { found states { purpose granted } } }"""
AUDIT = "query($after: Int!) { auditLog(afterSeq: $after, first: 1000) { seq action target } }"


def _event(email: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(8)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "userId": f"c-{secrets.token_hex(4)}",
        "context": {"traits": {"email": email}, "consent": {"purposes": ["analytics", "advertising"]}},
        "properties": {"topics": ["sports/football"]},
    }
    record.update(overrides)
    return record


def _send(server: LiveServer, token: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()
    return dict(body["data"]["ingestEvents"])


def _filed(server: LiveServer, token: str, kind: str, email: str) -> int:
    filed = server.graphql(FILE, token=token, variables={"kind": kind, "email": email}).json()["data"]["fileRequest"]
    assert filed["errors"] == []
    request = filed["request"]
    assert (request["kind"], request["status"], request["identifierKind"]) == (kind, "RECEIVED", "email")
    assert request["overdue"] is False
    assert datetime.fromisoformat(request["dueAt"]) - datetime.fromisoformat(request["receivedAt"]) >= timedelta(28)
    return int(request["id"])


def _audit_since(server: LiveServer, token: str, seq: int) -> list[dict[str, Any]]:
    """Every entry after ``seq``; reading is audited too, so a short page is the end (not an empty one)."""
    entries: list[dict[str, Any]] = []
    while True:
        page = server.graphql(AUDIT, token=token, variables={"after": seq}).json()["data"]["auditLog"]
        entries.extend(page)
        if len(page) < 1000:
            return entries
        seq = page[-1]["seq"]


def _head(server: LiveServer, token: str) -> int:
    entries = _audit_since(server, token, 0)
    return int(entries[-1]["seq"]) if entries else 0


def test_an_erasure_runs_from_filing_to_receipt_and_the_person_is_refused_when_sent_again(
    live_server: LiveServer,
) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email, other = f"erase.me.{secrets.token_hex(4)}@example.org", f"keep.me.{secrets.token_hex(4)}@example.org"
    first = _event(email)
    assert _send(live_server, admin, [first, _event(email), _event(other)])["accepted"] == 3
    start = _head(live_server, compliance)

    request_id = _filed(live_server, compliance, "ERASURE", email)
    early = live_server.graphql(EXECUTE, token=compliance, variables={"id": request_id}).json()["data"]
    assert early["executeRequest"]["errors"][0]["code"] == "NOT_VERIFIED"
    verified = live_server.graphql(VERIFY, token=compliance, variables={"id": request_id}).json()["data"]
    assert verified["verifyRequest"]["request"]["status"] == "VERIFIED"
    assert verified["verifyRequest"]["request"]["verifiedBy"] is not None
    done = live_server.graphql(EXECUTE, token=compliance, variables={"id": request_id}).json()["data"]
    request = done["executeRequest"]["request"]
    assert request["status"] == "COMPLETED"
    assert request["outcome"]["subjects"] == 1
    assert request["outcome"]["keys_destroyed"] == 1

    receipts = live_server.graphql(RECEIPTS, token=compliance, variables={"id": request_id}).json()["data"]
    removed = {row["table"]: row["rows"] for row in receipts["erasureReceipts"][0]["rowsRemoved"]}
    assert removed["events"] == 2
    assert removed["subject_keys"] == 1

    gone = live_server.graphql(CONSENT, token=compliance, variables={"email": email}).json()["data"]["consent"]
    assert gone["found"] is False
    kept = live_server.graphql(CONSENT, token=compliance, variables={"email": other}).json()["data"]["consent"]
    assert kept["found"] is True

    again = _send(live_server, admin, [_event(email)])
    assert again["accepted"] == 0
    assert [r["code"] for r in again["rejected"]] == ["SUPPRESSED"]
    resent = _send(live_server, admin, [first])  # the erased event itself, sent again: still a duplicate
    assert resent["accepted"] == 0

    actions = [(e["action"], e["target"]) for e in _audit_since(live_server, compliance, start)]
    target = f"request:{request_id}"
    mine = [action for action, where in actions if where == target]
    assert mine == ["request.filed", "request.verified", "request.executing", "erasure.completed", "request.completed"]


def test_an_erasure_run_again_changes_nothing_and_says_so(live_server: LiveServer) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = f"twice.{secrets.token_hex(4)}@example.org"
    _send(live_server, admin, [_event(email)])
    request_id = _filed(live_server, compliance, "ERASURE", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": request_id})
    live_server.graphql(EXECUTE, token=compliance, variables={"id": request_id})
    again = live_server.graphql(EXECUTE, token=compliance, variables={"id": request_id}).json()["data"]
    assert again["executeRequest"]["errors"][0]["code"] == "ALREADY_CLOSED"


def test_an_erasure_of_someone_unknown_completes_and_suppresses_the_identifier(live_server: LiveServer) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = f"never.seen.{secrets.token_hex(4)}@example.org"
    request_id = _filed(live_server, compliance, "ERASURE", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": request_id})
    done = live_server.graphql(EXECUTE, token=compliance, variables={"id": request_id}).json()["data"]
    assert done["executeRequest"]["request"]["outcome"]["subjects"] == 0
    later = _send(live_server, admin, [_event(email)])
    assert [r["code"] for r in later["rejected"]] == ["SUPPRESSED"]


def test_an_access_export_holds_the_person_and_every_export_is_audited(live_server: LiveServer) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = f"show.me.{secrets.token_hex(4)}@example.org"
    _send(
        live_server, admin, [_event(email), _event(email), _event(f"someone.else.{secrets.token_hex(3)}@example.org")]
    )
    request_id = _filed(live_server, compliance, "ACCESS", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": request_id})
    start = _head(live_server, compliance)
    first = live_server.graphql(EXPORT, token=compliance, variables={"id": request_id}).json()["data"]["exportRequest"]
    assert first["errors"] == []
    assert first["request"]["status"] == "COMPLETED"
    document = first["document"]
    assert document["version"] == 1
    assert document["counts"]["events"] == 2
    second = live_server.graphql(EXPORT, token=compliance, variables={"id": request_id}).json()["data"]["exportRequest"]
    assert second["request"]["outcome"]["exports"] == 2
    exports = [e for e in _audit_since(live_server, compliance, start) if e["action"] == "access.export"]
    assert len(exports) == 2


def test_restriction_objection_and_their_lifting_over_http(live_server: LiveServer) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = f"hold.on.{secrets.token_hex(4)}@example.org"
    _send(live_server, admin, [_event(email)])

    objection = _filed(live_server, compliance, "OBJECTION", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": objection})
    live_server.graphql(EXECUTE, token=compliance, variables={"id": objection})
    states = live_server.graphql(CONSENT, token=compliance, variables={"email": email}).json()["data"]["consent"]
    assert {"purpose": "ADVERTISING", "granted": False} in states["states"]

    restriction = _filed(live_server, compliance, "RESTRICTION", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": restriction})
    done = live_server.graphql(EXECUTE, token=compliance, variables={"id": restriction}).json()["data"]
    assert done["executeRequest"]["request"]["outcome"]["restricted"] == 1
    lift = "mutation($id: Int!) { liftRestriction(id: $id) { request { outcome } errors { code } } }"
    lifted = live_server.graphql(lift, token=compliance, variables={"id": restriction}).json()["data"]
    assert lifted["liftRestriction"]["request"]["outcome"]["lifted"] == 1
    twice = live_server.graphql(lift, token=compliance, variables={"id": restriction}).json()["data"]
    assert twice["liftRestriction"]["errors"][0]["code"] == "NOT_RESTRICTED"


def test_requests_are_the_compliance_roles_alone(live_server: LiveServer) -> None:
    for role in (Role.ADMIN, Role.ANALYST, Role.MARKETER):
        token = live_server.issue_key(role)
        body = live_server.graphql(FILE, token=token, variables={"kind": "ERASURE", "email": "a@example.org"}).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert body["data"] is None


def test_a_bad_identifier_is_refused_without_echo_and_files_nothing(live_server: LiveServer) -> None:
    compliance = live_server.issue_key(Role.COMPLIANCE)
    secret = f"not-an-email-{secrets.token_hex(4)}"
    body = live_server.graphql(FILE, token=compliance, variables={"kind": "ACCESS", "email": secret}).json()
    refused = body["data"]["fileRequest"]
    assert refused["request"] is None
    assert refused["errors"][0]["code"] == "INVALID_EMAIL"
    assert secret not in str(body)
    assert secret not in live_server.log_text()


RECTIFY = """
mutation($id: Int!, $changes: [AttributeChangeInput!]!) {
  rectifyRequest(id: $id, changes: $changes) {
    request { status outcome } changes { field before after } errors { field code message }
  }
}"""


def test_a_rectification_over_http_reports_kinds_and_keeps_values_out_of_answers_and_logs(
    live_server: LiveServer,
) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = f"fix.me.{secrets.token_hex(4)}@example.org"
    _send(live_server, admin, [_event(email)])
    request_id = _filed(live_server, compliance, "RECTIFICATION", email)
    live_server.graphql(VERIFY, token=compliance, variables={"id": request_id})

    bad_value = f"not-a-region-{secrets.token_hex(3)}" * 3
    refused = live_server.graphql(
        RECTIFY, token=compliance, variables={"id": request_id, "changes": [{"field": "region", "value": bad_value}]}
    ).json()["data"]["rectifyRequest"]
    assert refused["request"] is None
    assert refused["errors"][0]["field"] == "region"
    assert bad_value not in str(refused)

    name = f"Ana-{secrets.token_hex(3)}"
    done = live_server.graphql(
        RECTIFY,
        token=compliance,
        variables={"id": request_id, "changes": [{"field": "first_name", "value": name}, {"field": "phone"}]},
    ).json()["data"]["rectifyRequest"]
    assert done["errors"] == []
    assert done["request"]["status"] == "COMPLETED"
    assert {(c["field"], c["before"], c["after"]) for c in done["changes"]} == {
        ("first_name", "absent", "present"),
        ("phone", "absent", "absent"),
    }
    assert name not in live_server.log_text()
    assert bad_value not in live_server.log_text()
