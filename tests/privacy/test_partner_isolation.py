"""A partner probes and pushes with its own key: it must learn nothing about people it did not
supply, and must not change their own consent or personal data."""

from __future__ import annotations

import secrets
from typing import Any

from privacy.identifiers import IdentifierKind, normalize
from server.auth.principal import SYSTEM_ACTOR, Role
from server.suppression.service import suppress
from tests.http.test_ingest_api import INGEST, event
from tests.support.live_server import LiveServer

CONSENT = """
query($email: String!) { consent(identifier: {kind: EMAIL, value: $email}) { states { purpose partnerId granted } } }"""


def with_email(email: str, purposes: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return event(
        anonymousId=None, context={"traits": {"email": email}, "consent": {"purposes": purposes or []}, **extra}
    )


def known_person(server: LiveServer, purposes: list[str]) -> str:
    email = f"known.{secrets.token_hex(4)}@example.org"
    admin = server.issue_key(Role.ADMIN)
    body = server.graphql(INGEST, token=admin, variables={"batch": {"events": [with_email(email, purposes)]}}).json()
    assert body["data"]["ingestEvents"]["accepted"] == 1
    return email


def test_answers_do_not_reveal_who_is_known_without_consent_or_erased(live_server: LiveServer) -> None:
    consenting = known_person(live_server, ["analytics"])
    withdrawn = known_person(live_server, ["analytics"])
    admin = live_server.issue_key(Role.ADMIN)
    live_server.graphql(INGEST, token=admin, variables={"batch": {"events": [with_email(withdrawn, [])]}})
    erased = f"erased.{secrets.token_hex(4)}@example.org"
    with live_server.runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        suppress(unit.session, normalize(IdentifierKind.EMAIL, erased), unit.kit, unit.clock())
    stranger = f"stranger.{secrets.token_hex(4)}@example.org"

    partner = live_server.issue_key(Role.PARTNER)
    answers = []
    for email in (consenting, withdrawn, erased, stranger):
        body = live_server.graphql(
            INGEST.replace("newSubjects", ""),
            token=partner,
            variables={"batch": {"events": [with_email(email, ["analytics"])]}},
        ).json()
        answers.append(body["data"]["ingestEvents"])
    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0]["rejected"] == []


def test_graph_counts_are_not_shown_to_partners(live_server: LiveServer) -> None:
    partner = live_server.issue_key(Role.PARTNER)
    body = live_server.graphql(
        "mutation($b: EventBatchInput!) { ingestEvents(batch: $b) { accepted newSubjects merges } }",
        token=partner,
        variables={"b": {"events": [event()]}},
    ).json()
    assert body["data"]["ingestEvents"]["newSubjects"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}


def test_a_partner_cannot_withdraw_or_grant_a_persons_own_purposes(live_server: LiveServer) -> None:
    email = known_person(live_server, ["analytics"])
    partner = live_server.issue_key(Role.PARTNER)
    live_server.graphql(INGEST, token=partner, variables={"batch": {"events": [with_email(email, [])]}})
    live_server.graphql(
        INGEST, token=partner, variables={"batch": {"events": [with_email(email, ["advertising", "profiling"])]}}
    )
    compliance = live_server.issue_key(Role.COMPLIANCE)
    states = live_server.graphql(CONSENT, token=compliance, variables={"email": email}).json()
    own = {s["purpose"]: s["granted"] for s in states["data"]["consent"]["states"] if s["partnerId"] is None}
    assert own == {"ANALYTICS": True}


def test_a_partners_customer_id_is_not_ours(live_server: LiveServer) -> None:
    """Partner "cust-1001" must not attach to our customer "cust-1001"."""
    customer = f"cust-{secrets.token_hex(3)}"
    admin = live_server.issue_key(Role.ADMIN)
    ours = event(userId=customer, anonymousId=None)
    live_server.graphql(INGEST, token=admin, variables={"batch": {"events": [ours]}})
    partner = live_server.issue_key(Role.PARTNER)
    theirs = event(userId=customer, anonymousId=None)
    live_server.graphql(INGEST, token=partner, variables={"batch": {"events": [theirs]}})
    owners = subjects_of_events(live_server, ours["messageId"], theirs["messageId"])
    assert owners[ours["messageId"]] != owners.get(theirs["messageId"]), "a partner's id reached our customer"


def subjects_of_events(server: LiveServer, *event_ids: str) -> dict[str, int]:
    from sqlalchemy import select

    from server.storage.tables import EventRow

    keys = dict(zip(server.runtime.kit.message_keys.digest_many(event_ids), event_ids, strict=True))
    with server.runtime.sessions() as session:
        rows = session.execute(select(EventRow.message_key, EventRow.subject_id).where(EventRow.message_key.in_(keys)))
        return {keys[key]: subject_id for key, subject_id in rows}


def test_partners_cannot_write_attributes(live_server: LiveServer) -> None:
    partner = live_server.issue_key(Role.PARTNER)
    body = live_server.graphql(
        "mutation { upsertAttributes(batch: {records: "
        '[{email: "x@example.org", firstName: "Mallory"}]}) { accepted } }',
        token=partner,
    ).json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
