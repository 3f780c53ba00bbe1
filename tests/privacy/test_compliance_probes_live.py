"""The request desk probed over a real server: the WebSocket transport as well as HTTP, partner scopes,
and what an erased person looks like afterwards to every question the team (or a partner) can ask."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import text

from server.auth.principal import Role
from tests.compliance.people import reached
from tests.compliance.test_audit_search_api import ENTRIES
from tests.compliance.test_requests_api import CONSENT, EXECUTE, EXPORT, FILE, RECEIPTS, VERIFY, _event, _send
from tests.privacy.test_partner_resend import PARTNER_INGEST
from tests.profiles.test_profile_api import PROFILE
from tests.support.live_server import LiveServer
from tests.support.websocket import TransportSocket, transport_socket

FILE_BY = """
mutation($kind: RequestKind!, $identifier: IdentifierInput!) {
  fileRequest(input: {kind: $kind, identifier: $identifier}) { request { id } errors { field code message } }
}"""
RECTIFY = """
mutation($id: Int!, $changes: [AttributeChangeInput!]!) {
  rectifyRequest(id: $id, changes: $changes) { request { status outcome } changes { field before after }
    errors { field code message } }
}"""
ATTRIBUTES = """
mutation($batch: AttributeBatchInput!) { upsertAttributes(batch: $batch) { accepted rejected { index code } } }"""


def _ws(socket: TransportSocket, query: str, **variables: Any) -> dict[str, Any]:
    outcome = socket.run(query, variables=variables)
    assert outcome.all_errors == [], outcome.all_errors
    (data,) = outcome.data
    return dict(data)


def _email(label: str) -> str:
    return f"{label}.{secrets.token_hex(5)}@example.org"


def _file_and_verify(socket: TransportSocket, kind: str, identifier: dict[str, Any]) -> int:
    filed = _ws(socket, FILE_BY, kind=kind, identifier=identifier)["fileRequest"]
    assert filed["errors"] == []
    request_id = int(filed["request"]["id"])
    assert _ws(socket, VERIFY, id=request_id)["verifyRequest"]["errors"] == []
    return request_id


def _answers_about(socket: TransportSocket, email: str) -> dict[str, Any]:
    """What the team can ask about an identifier, whole: consent, profile, the audit by subject, an export."""
    identifier = {"kind": "EMAIL", "value": email}
    export = _ws(socket, EXPORT, id=_file_and_verify(socket, "ACCESS", identifier))["exportRequest"]
    document = dict(export["document"])
    volatile = {"request_id", "exported_at", "generated_at", "accesses"}
    document["sections"] = {name: part for name, part in document["sections"].items() if name != "accesses"}
    return {
        "consent": _ws(socket, CONSENT, email=email),
        "profile": _ws(socket, PROFILE, identifier=identifier),
        "audit": _ws(socket, ENTRIES, subject=identifier)["auditEntries"],
        "export": {key: value for key, value in document.items() if key not in volatile},
        "export counts": {k: v for k, v in document["counts"].items() if k != "accesses"},
        "export outcome": export["request"]["outcome"],
    }


def test_after_an_erasure_over_websocket_every_answer_about_the_person_is_a_strangers(
    live_server: LiveServer,
) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email, stranger = _email("erase.ws"), _email("stranger.ws")
    event = _event(email, context={"traits": {"email": email}, "consent": {"purposes": ["analytics", "profiling"]}})
    assert _send(live_server, admin, [event, _event(email)])["accepted"] == 2
    subjects = reached(live_server.runtime, email)
    with live_server.runtime.sessions() as session:
        pseudonyms = [
            bytes(p).hex()
            for (p,) in session.execute(
                text("SELECT pseudonym FROM identities WHERE subject_id = :s"), {"s": subjects[0]}
            )
        ]
    assert subjects
    assert pseudonyms

    with transport_socket(live_server, compliance) as socket:
        request_id = _file_and_verify(socket, "ERASURE", {"kind": "EMAIL", "value": email})
        done = _ws(socket, EXECUTE, id=request_id)["executeRequest"]
        retried = _ws(socket, EXECUTE, id=request_id)["executeRequest"]  # a client retrying the same message
        receipts = _ws(socket, RECEIPTS, id=request_id)["erasureReceipts"]
        assert done["request"]["status"] == "COMPLETED"
        assert done["request"]["outcome"]["subjects"] == 1
        assert [e["code"] for e in retried["errors"]] == ["ALREADY_CLOSED"]
        assert len(receipts) == 1
        shown = f"{done} {receipts}"
        for secret in [*map(str, subjects), *pseudonyms, email]:
            assert secret not in shown

        erased, unknown = _answers_about(socket, email), _answers_about(socket, stranger)
    # By design the team's own record stays: a search by the email shows the requests' steps, never a subject.
    audit = erased.pop("audit")
    unknown.pop("audit")
    assert {edge["node"]["target"].split(":")[0] for edge in audit["edges"]} == {"request"}
    for key in erased:
        assert erased[key] == unknown[key], key
    assert email not in live_server.log_text()


def test_an_erasure_reaches_a_person_a_partner_sent_and_the_partners_later_sends_reveal_nothing(
    live_server: LiveServer,
) -> None:
    compliance = live_server.issue_key(Role.COMPLIANCE)
    partner = live_server.issue_key(Role.PARTNER)
    email, stranger = _email("partner.sent"), _email("partner.stranger")

    def partner_sends(who: str) -> dict[str, Any]:
        batch = {
            "events": [
                _event(who, userId=None, context={"traits": {"email": who}, "consent": {"purposes": ["analytics"]}})
            ]
        }
        return dict(live_server.graphql(PARTNER_INGEST, token=partner, variables={"batch": batch}).json())

    first = partner_sends(email)
    assert first["data"]["ingestEvents"]["accepted"] == 1
    assert reached(live_server.runtime, email) != []  # linked in the partner's scope only

    with transport_socket(live_server, compliance) as socket:
        request_id = _file_and_verify(socket, "ERASURE", {"kind": "EMAIL", "value": email})
        done = _ws(socket, EXECUTE, id=request_id)["executeRequest"]
    assert done["request"]["outcome"]["subjects"] == 1
    assert reached(live_server.runtime, email) == []

    assert partner_sends(email) == partner_sends(stranger)  # a new event of the erased person: told nothing
    assert reached(live_server.runtime, email) == []  # and nothing stored
    assert reached(live_server.runtime, stranger) != []


def test_an_erasure_filed_by_a_partners_user_id_reaches_that_person(live_server: LiveServer) -> None:
    compliance = live_server.issue_key(Role.COMPLIANCE)
    partner_id = live_server.new_partner().id
    partner = live_server.issue_key(Role.PARTNER, partner_id=partner_id)
    user, other = f"pu-{secrets.token_hex(4)}", f"pu-{secrets.token_hex(4)}"

    def partner_sends(who: str) -> dict[str, Any]:
        record = _event(
            "unused@example.org",
            userId=None,
            anonymousId=None,
            context={"partnerUserId": who, "consent": {"purposes": ["analytics"]}},
        )
        body = live_server.graphql(PARTNER_INGEST, token=partner, variables={"batch": {"events": [record]}}).json()
        return dict(body)

    assert partner_sends(user)["data"]["ingestEvents"]["accepted"] == 1
    identifier = {"kind": "PARTNER_USER_ID", "value": user, "partnerId": partner_id}
    with transport_socket(live_server, compliance) as socket:
        request_id = _file_and_verify(socket, "ERASURE", identifier)
        done = _ws(socket, EXECUTE, id=request_id)["executeRequest"]
        assert done["request"]["outcome"]["subjects"] == 1
        assert partner_sends(user) == partner_sends(other)
        again = _ws(socket, FILE_BY, kind="ACCESS", identifier=identifier)["fileRequest"]
        access = int(again["request"]["id"])
        _ws(socket, VERIFY, id=access)
        document = _ws(socket, EXPORT, id=access)["exportRequest"]["document"]
    assert {k: v for k, v in document["counts"].items() if k != "accesses"} == dict.fromkeys(
        [k for k in document["counts"] if k != "accesses"], 0
    )
    assert user not in live_server.log_text()


def test_rectified_and_refused_values_reach_no_log_audit_or_error(live_server: LiveServer) -> None:
    admin, compliance = live_server.issue_key(Role.ADMIN), live_server.issue_key(Role.COMPLIANCE)
    email = _email("rectify.live")
    old_name, new_name, bad_year = f"Oldname{secrets.token_hex(3)}", f"Newname{secrets.token_hex(3)}", "19x7"
    _send(live_server, admin, [_event(email)])
    batch = {"records": [{"email": email, "firstName": old_name}]}
    assert (
        live_server.graphql(ATTRIBUTES, token=admin, variables={"batch": batch}).json()["data"]["upsertAttributes"][
            "accepted"
        ]
        == 1
    )

    with transport_socket(live_server, compliance) as socket:
        request_id = _file_and_verify(socket, "RECTIFICATION", {"kind": "EMAIL", "value": email})
        refused = _ws(
            socket,
            RECTIFY,
            id=request_id,
            changes=[{"field": "birth_year", "value": bad_year}, {"field": "first_name", "value": new_name}],
        )
        assert [e["code"] for e in refused["rectifyRequest"]["errors"]] == ["INVALID_BIRTH_YEAR"]
        done = _ws(socket, RECTIFY, id=request_id, changes=[{"field": "first_name", "value": new_name}])
    assert done["rectifyRequest"]["changes"] == [{"field": "first_name", "before": "present", "after": "present"}]
    with live_server.runtime.engine.connect() as connection:
        audit = " ".join(str(tuple(row)) for row in connection.execute(text("SELECT * FROM audit_log")))
    for value in (old_name, new_name, email):
        assert value not in audit
        assert value not in live_server.log_text()
        assert value not in str(refused) + str(done)


def test_refusals_over_websocket_name_rules_never_values(live_server: LiveServer) -> None:
    compliance, analyst = live_server.issue_key(Role.COMPLIANCE), live_server.issue_key(Role.ANALYST)
    email = _email("refusals")
    with transport_socket(live_server, compliance) as socket:
        access = _file_and_verify(socket, "ACCESS", {"kind": "EMAIL", "value": email})
        unknown = _ws(socket, EXECUTE, id=987_654_321)["executeRequest"]["errors"]
        wrong_kind = _ws(socket, EXECUTE, id=access)["executeRequest"]["errors"]
        label = socket.run(
            'mutation($id: Int!, $ref: String!) { verifyRequest(id: $id, method: "x", reference: $ref) '
            "{ errors { field code message } } }",
            variables={"id": access, "ref": email},
        ).data[0]["verifyRequest"]["errors"]
        bad = _ws(socket, FILE, kind="ERASURE", email=f"no-at-sign-{email.replace('@', '')}")["fileRequest"]["errors"]
    assert [e["code"] for e in unknown] == ["UNKNOWN_REQUEST"]
    assert [e["code"] for e in wrong_kind] == ["WRONG_KIND"]
    assert [e["code"] for e in label] == ["ALREADY_VERIFIED"] or [e["code"] for e in label] == ["INVALID_LABEL"]
    assert [e["code"] for e in bad] == ["INVALID_EMAIL"]
    shown = f"{unknown}{wrong_kind}{label}{bad}"
    assert email not in shown
    assert email.replace("@", "") not in shown
    assert "987654321" not in shown
    with transport_socket(live_server, analyst) as socket:
        forbidden = socket.run(FILE, variables={"kind": "ERASURE", "email": email})
    assert forbidden.codes == ["FORBIDDEN"]
    assert email not in str(forbidden.all_errors)
    assert email not in live_server.log_text()
    assert email.replace("@", "") not in live_server.log_text()
