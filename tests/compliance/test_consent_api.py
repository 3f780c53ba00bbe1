"""The compliance team records and reads consent by identifier over GraphQL; every call is audited."""

from __future__ import annotations

import secrets
from typing import Any

from server.auth.principal import Role
from tests.support.live_server import LiveServer

RECORD = """
mutation($input: RecordConsentInput!) {
  recordConsent(input: $input) { recorded suppressionLifted errors { field code message } }
}"""
READ = """
query($identifier: IdentifierInput!) {
  consent(identifier: $identifier) {
    found
    states { purpose partnerId granted }
    history { purpose granted source policyVersion legalBasis }
  }
}"""
SIGNAL = """
mutation($input: PrivacySignalInput!) { recordPrivacySignal(input: $input) { recorded errors { code } } }"""


def consent_input(email: str, *, purpose: str = "ANALYTICS", granted: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "identifier": {"kind": "EMAIL", "value": email},
            "purpose": purpose,
            "granted": granted,
            "source": "cmp:web",
            "policyVersion": "2026-10",
            **extra,
        }
    }


def test_grant_withdraw_and_read_by_any_spelling_of_the_email(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    email = f"consent.reader.{live_server.base_url[-5:]}@example.org"
    granted = live_server.graphql(RECORD, token=token, variables=consent_input(email)).json()
    assert granted["data"]["recordConsent"] == {"recorded": True, "suppressionLifted": False, "errors": []}
    live_server.graphql(RECORD, token=token, variables=consent_input(email, granted=False))
    view = live_server.graphql(
        READ, token=token, variables={"identifier": {"kind": "EMAIL", "value": f"  {email.upper()} "}}
    ).json()
    consent = view["data"]["consent"]
    assert consent["found"] is True
    assert consent["states"] == [{"purpose": "ANALYTICS", "partnerId": None, "granted": False}]
    assert [entry["granted"] for entry in consent["history"]] == [True, False]
    assert consent["history"][0]["legalBasis"] == "CONSENT"


def test_unknown_identifier_is_not_found(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    view = live_server.graphql(
        READ, token=token, variables={"identifier": {"kind": "EMAIL", "value": "nobody.here@example.org"}}
    )
    assert view.json()["data"]["consent"] == {"found": False, "states": [], "history": []}


def test_gpc_withdraws_advertising_only(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    email = "gpc.person@example.org"
    for purpose in ("ANALYTICS", "ADVERTISING"):
        live_server.graphql(RECORD, token=token, variables=consent_input(email, purpose=purpose))
    signal = live_server.graphql(
        SIGNAL,
        token=token,
        variables={
            "input": {
                "identifier": {"kind": "EMAIL", "value": email},
                "signal": "GLOBAL_PRIVACY_CONTROL",
                "source": "web:gpc",
            }
        },
    )
    assert signal.json()["data"]["recordPrivacySignal"] == {"recorded": True, "errors": []}
    states = live_server.graphql(READ, token=token, variables={"identifier": {"kind": "EMAIL", "value": email}})
    by_purpose = {s["purpose"]: s["granted"] for s in states.json()["data"]["consent"]["states"]}
    assert by_purpose == {"ANALYTICS": True, "ADVERTISING": False}


def test_invalid_input_is_an_actionable_error_without_the_value(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    bad_email = live_server.graphql(RECORD, token=token, variables=consent_input("ana.at.example.org")).json()
    [error] = bad_email["data"]["recordConsent"]["errors"]
    assert error["code"] == "INVALID_EMAIL"
    assert "ana.at" not in error["message"]
    sharing = live_server.graphql(
        RECORD, token=token, variables=consent_input("share@example.org", purpose="SHARING")
    ).json()
    assert sharing["data"]["recordConsent"]["errors"][0]["code"] == "PARTNER_SCOPE"
    free_text = live_server.graphql(
        RECORD, token=token, variables=consent_input("share@example.org", source="call with Ana Lopez")
    ).json()
    assert free_text["data"]["recordConsent"]["errors"][0]["code"] == "INVALID_SOURCE"


def test_every_consent_call_is_audited_without_the_identifier(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    email = "audited.person@example.org"
    live_server.graphql(RECORD, token=token, variables=consent_input(email))
    live_server.graphql(READ, token=token, variables={"identifier": {"kind": "EMAIL", "value": email}})
    log = live_server.graphql("{ auditLog(first: 1000) { action target details { key value } } }", token=token)
    entries = log.json()["data"]["auditLog"]
    actions = [entry["action"] for entry in entries]
    assert "consent.grant" in actions
    assert "consent.read" in actions
    assert "audited.person" not in log.text
    assert "example.org" not in log.text


def test_concurrent_reading_and_auditing_resolvers_do_not_collide(live_server: LiveServer) -> None:
    """Two root fields run side by side, each reading and then appending to the audit log."""
    token = live_server.issue_key(Role.COMPLIANCE)
    for _ in range(5):
        body = live_server.graphql(
            "{ verifyAuditLog { intact } auditLog(first: 3) { seq } consent(identifier: {kind: EMAIL, "
            'value: "nobody@example.org"}) { found } }',
            token=token,
        ).json()
        assert "errors" not in body, body
        assert body["data"]["verifyAuditLog"]["intact"] is True


def test_a_refused_request_changes_nothing(live_server: LiveServer) -> None:
    """A grant with a bad source for an erased email must not lift its suppression or create anyone."""
    from privacy.identifiers import IdentifierKind, normalize
    from server.auth.principal import SYSTEM_ACTOR
    from server.subjects.service import find_subject
    from server.suppression.service import is_suppressed, suppress

    token = live_server.issue_key(Role.COMPLIANCE)
    email = f"erased.{secrets.token_hex(3)}@example.org"
    identifier = normalize(IdentifierKind.EMAIL, email)
    with live_server.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        suppress(unit.session, identifier, unit.kit, unit.clock())
    refused = live_server.graphql(RECORD, token=token, variables=consent_input(email, source="bad source!")).json()
    assert refused["data"]["recordConsent"]["errors"][0]["code"] == "INVALID_SOURCE"
    unknown_partner = live_server.graphql(
        RECORD, token=token, variables=consent_input(email, purpose="SHARING", partnerId=987654)
    ).json()
    assert unknown_partner["data"]["recordConsent"]["errors"][0]["code"] == "UNKNOWN_PARTNER"
    with live_server.runtime.sessions() as session:
        assert is_suppressed(session, identifier, live_server.runtime.kit)
        assert find_subject(session, identifier, live_server.runtime.kit) is None


def test_bad_variables_are_bad_user_input_not_internal_errors(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.COMPLIANCE)
    unknown_field = consent_input("x@example.org")
    unknown_field["input"]["colour"] = "blue"
    bad_enum = consent_input("x@example.org", purpose="WORLD_DOMINATION")
    for variables in (unknown_field, bad_enum):
        body = live_server.graphql(RECORD, token=token, variables=variables).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
        assert "WORLD_DOMINATION" not in str(body)
