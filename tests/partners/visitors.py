"""Visitors as a partner's tests need them, made through the real APIs over HTTP.

A visitor is known to us first-hand (an admin key's event with an email and the person's own
consent), then sent by a partner with that partner's user id and device id and a consent statement
(which grants sharing with that partner). Every identifier the partner sent, the email we know
included, is linked in its own scope, which is what the visitor lookup follows.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from privacy.identifiers import IdentifierKind
from privacy.purposes import Purpose
from server.auth.principal import Role
from server.partners.lookup import subject_in_partner_scope
from tests.support.live_server import LiveServer

INGEST = """
mutation($batch: EventBatchInput!) { ingestEvents(batch: $batch) { accepted rejected { index code } } }"""
RECORD_CONSENT = """
mutation($email: String!, $purpose: ConsentPurpose!, $granted: Boolean!, $partner: Int) {
  recordConsent(input: {identifier: {kind: EMAIL, value: $email}, purpose: $purpose, granted: $granted,
                        partnerId: $partner, source: "cmp:web", policyVersion: "v1"}) { recorded errors { code } }
}"""
FILE = """
mutation($kind: RequestKind!, $email: String!) {
  fileRequest(input: {kind: $kind, identifier: {kind: EMAIL, value: $email}}) { request { id } errors { code } }
}"""
VERIFY = (
    'mutation($id: Int!) { verifyRequest(id: $id, method: "email-challenge", reference: "t:1") { errors { code } } }'
)
EXECUTE = "mutation($id: Int!) { executeRequest(id: $id) { request { status } errors { code } } }"
VISITOR = """
query($kind: IdentifierKind!, $value: String!, $k: Int! = 5) {
  visitor(identifier: {kind: $kind, value: $value}, topInterests: $k) {
    asOf segments { name purpose } interests { topic name score }
  }
}"""

EVERY_PURPOSE = [purpose.value for purpose in Purpose]
RUNNING = "healthy-living/fitness-and-exercise/running-and-jogging"
SENSITIVE = "healthy-living/weight-loss"
"""Art. 9: never counted, never shown."""


@dataclass
class PartnerApp:
    """A registered partner and a key bound to it."""

    id: int
    token: str


@dataclass
class Person:
    email: str
    user_ids: dict[int, str] = field(default_factory=dict)
    """The user id each partner knows the person by."""
    devices: dict[int, str] = field(default_factory=dict)


def partner_app(server: LiveServer, *purposes: Purpose) -> PartnerApp:
    chosen = purposes or (Purpose.ANALYTICS, Purpose.PERSONALIZATION, Purpose.ADVERTISING)
    partner = server.new_partner(purposes=tuple(chosen))
    return PartnerApp(partner.id, server.issue_key(Role.PARTNER, partner_id=partner.id))


def _event(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": f"m-{secrets.token_hex(8)}",
        "type": "page_view",
        "channel": "web",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "properties": {"topics": [RUNNING, "travel", SENSITIVE]},
    }
    record.update(fields)
    return record


def send(server: LiveServer, token: str, events: list[dict[str, Any]]) -> None:
    body = server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()
    assert body["data"]["ingestEvents"]["rejected"] == [], body


def known_person(server: LiveServer, *, purposes: list[str] | None = None, events: int = 3) -> Person:
    """A person we know first-hand, consenting to ``purposes`` (every one by default)."""
    email = f"visitor.{secrets.token_hex(5)}@example.org"
    admin = server.issue_key(Role.ADMIN)
    consent = {"purposes": EVERY_PURPOSE if purposes is None else purposes}
    send(server, admin, [_event(context={"traits": {"email": email}, "consent": consent}) for _ in range(events)])
    return Person(email)


def sent_by(server: LiveServer, partner: PartnerApp, person: Person, *, statement: list[str] | None = None) -> Person:
    """``partner`` sends an event of ``person`` with its own user id and a device id (and the email,
    which attaches the record to the person we know).

    The event is about running, not travel: the person's interest in running (and in its parents)
    then always outranks travel. Equal by the events, the two would be ranked by the last bit of
    their separately summed accumulators, which varies from person to person and, as both decay,
    from one lookup to the next, moving travel into or out of a top k between two reads."""
    user_id, device = f"u-{secrets.token_hex(5)}", f"dev-{secrets.token_hex(6)}"
    consent = {"purposes": ["personalization"] if statement is None else statement}
    event = _event(
        userId=user_id,
        anonymousId=device,
        context={"traits": {"email": person.email}, "consent": consent},
        properties={"topics": [RUNNING, SENSITIVE]},
    )
    send(server, partner.token, [event])
    person.user_ids[partner.id] = user_id
    person.devices[partner.id] = device
    return person


def people_sent_by(server: LiveServer, partners: list[PartnerApp], count: int) -> list[Person]:
    """``count`` people we know first-hand (one event each), each sent by every one of ``partners``."""
    persons = []
    for _ in range(count):
        person = known_person(server, events=1)
        for partner in partners:
            sent_by(server, partner, person)
        persons.append(person)
    return persons


def subject_of(server: LiveServer, partner: PartnerApp, person: Person) -> int:
    with server.runtime.sessions() as session:
        found = subject_in_partner_scope(
            session,
            server.runtime.kit,
            partner_id=partner.id,
            kind=IdentifierKind.PARTNER_USER_ID,
            value=person.user_ids[partner.id],
        )
    assert found is not None
    return found


def lookup(server: LiveServer, partner: PartnerApp, kind: str, value: str, *, top_interests: int = 5) -> dict[str, Any]:
    body = server.graphql(
        VISITOR, token=partner.token, variables={"kind": kind, "value": value, "k": top_interests}
    ).json()
    assert "errors" not in body, body
    return dict(body["data"]["visitor"])


@dataclass(frozen=True)
class Decaying:
    """A score read at some moment: equal to the same score read seconds later, which has decayed by
    up to 3 parts in a million a second (the shortest half-life, 3 days); 1e-4 allows half a minute.
    (Rounding both to 6 digits was not enough: a pair read apart could straddle a rounding boundary,
    and the test then failed on the clock.)"""

    score: float

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decaying) and math.isclose(self.score, other.score, rel_tol=1e-4)

    def __hash__(self) -> int:
        return 0


def without_time(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without what moves with the clock: ``asOf``; scores (which decay) compare within 1e-4."""
    return {
        "segments": answer.get("segments"),
        "interests": [{**interest, "score": Decaying(interest["score"])} for interest in answer["interests"]],
    }


def record_consent(
    server: LiveServer, person: Person, purpose: str, *, granted: bool, partner_id: int | None = None
) -> None:
    compliance = server.issue_key(Role.COMPLIANCE)
    body = server.graphql(
        RECORD_CONSENT,
        token=compliance,
        variables={"email": person.email, "purpose": purpose, "granted": granted, "partner": partner_id},
    ).json()
    assert body["data"]["recordConsent"] == {"recorded": True, "errors": []}, body


def carry_out(server: LiveServer, kind: str, person: Person) -> None:
    """File, verify and execute a request (ERASURE, RESTRICTION, OBJECTION) as the compliance team does."""
    compliance = server.issue_key(Role.COMPLIANCE)
    filed = server.graphql(FILE, token=compliance, variables={"kind": kind, "email": person.email}).json()
    request_id = filed["data"]["fileRequest"]["request"]["id"]
    server.graphql(VERIFY, token=compliance, variables={"id": request_id})
    done = server.graphql(EXECUTE, token=compliance, variables={"id": request_id}).json()
    assert done["data"]["executeRequest"]["request"]["status"] == "COMPLETED", done


MEMBERS = """
query($segment: String!, $first: Int!, $after: String) {
  segmentMembers(segment: $segment, first: $first, after: $after) {
    edges { cursor node } pageInfo { hasNextPage endCursor } errors { field code message }
  }
}"""
CHANGES = """
query($after: String, $first: Int!) {
  segmentChanges(after: $after, first: $first) {
    edges { cursor node { kind pseudonym segment purpose at } } pageInfo { hasNextPage endCursor }
    errors { field code message }
  }
}"""


def members_page(
    server: LiveServer, token: str, segment: str, *, first: int = 100, after: str | None = None
) -> dict[str, Any]:
    body = server.graphql(MEMBERS, token=token, variables={"segment": segment, "first": first, "after": after}).json()
    assert "errors" not in body, body
    return dict(body["data"]["segmentMembers"])


def all_members(server: LiveServer, token: str, segment: str, *, first: int = 100) -> list[str]:
    found: list[str] = []
    after = None
    while True:
        page = members_page(server, token, segment, first=first, after=after)
        assert page["errors"] == [], page
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def changes_page(server: LiveServer, token: str, *, after: str | None = None, first: int = 100) -> dict[str, Any]:
    body = server.graphql(CHANGES, token=token, variables={"after": after, "first": first}).json()
    assert "errors" not in body, body
    return dict(body["data"]["segmentChanges"])


@dataclass
class Visible:
    """A person ``partner`` sent, in a segment granted to it for personalization, consenting to all."""

    person: Person
    subject: int
    grant: Any


def visible_person(server: LiveServer, partner: PartnerApp, *, segment: tuple[int, str] | None = None) -> Visible:
    from tests.partners import seed

    person = sent_by(server, partner, known_person(server))
    subject = subject_of(server, partner, person)
    segment_id, _ = segment or seed.segment(server.runtime)
    granted = seed.grant(server.runtime, segment_id, partner.id, Purpose.PERSONALIZATION)
    seed.enter(server.runtime, segment_id, [subject], told=[granted])
    return Visible(person, subject, granted)
