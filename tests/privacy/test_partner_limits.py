"""A partner pushes with its own key, over HTTP: its identifiers must not join two of our people,
plant a link our own records follow, move anyone's consent or personal data, or serve a purpose
the partner did not declare; and its answer must not say which of these it tried."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from privacy.keyring import dumps_keyring
from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR, Role
from server.consent import service as consent
from server.partners.service import create_partner
from server.runtime import Runtime
from server.storage.tables import (
    ConsentRecordRow,
    ConsentStateRow,
    EventRow,
    IdentityMergeRow,
    SubjectPiiRow,
    SubjectRow,
)
from tests.http.test_ingest_api import INGEST, event
from tests.ingest.batches import event as batch_event
from tests.ingest.batches import ingest as batch_ingest
from tests.privacy.test_partner_isolation import subjects_of_events
from tests.support.cli import run_audience
from tests.support.live_server import LiveServer

PARTNER_INGEST = INGEST.replace("newSubjects", "")
UPSERT = "mutation($b: AttributeBatchInput!) { upsertAttributes(batch: $b) { accepted } }"
CONSENT = """
query($email: String!) { consent(identifier: {kind: EMAIL, value: $email}) { states { purpose partnerId granted } } }"""


def identified(*, email: str | None = None, phone: str | None = None, **extra: Any) -> dict[str, Any]:
    traits = {key: value for key, value in (("email", email), ("phone", phone)) if value}
    consent_context = extra.pop("consent", {"purposes": ["analytics"]})
    return event(anonymousId=None, context={"traits": traits, "consent": consent_context}, **extra)


def new_email() -> str:
    return f"p.{secrets.token_hex(5)}@example.org"


def new_phone() -> str:
    return f"+4930{secrets.randbelow(10**8):08d}"


def ingest(server: LiveServer, token: str, *events: dict[str, Any]) -> dict[str, Any]:
    body = server.graphql(PARTNER_INGEST, token=token, variables={"batch": {"events": list(events)}}).json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["ingestEvents"]
    return result


def first_party(server: LiveServer, purposes: list[str], **identifiers: str) -> int:
    """A person we know first-hand, with the given own purposes and an encrypted first name."""
    admin = server.issue_key(Role.ADMIN)
    seen = identified(consent={"purposes": purposes}, **identifiers)
    assert ingest(server, admin, seen)["accepted"] == 1
    attributes = {**identifiers, "firstName": f"Name{secrets.token_hex(3)}"}
    stored = server.graphql(UPSERT, token=admin, variables={"b": {"records": [attributes]}}).json()
    assert stored["data"]["upsertAttributes"]["accepted"] == 1, stored
    return subjects_of_events(server, seen["messageId"])[seen["messageId"]]


def footprint(runtime: Runtime, *subjects: int) -> dict[str, Any]:
    """What a partner must not change about these people: status, PII, consent, merges."""
    with runtime.sessions() as session:
        return {
            "subjects": sorted(
                session.execute(
                    select(SubjectRow.id, SubjectRow.status, SubjectRow.merged_into).where(SubjectRow.id.in_(subjects))
                ).all()
            ),
            "pii": sorted(
                session.execute(
                    select(SubjectPiiRow.subject_id, SubjectPiiRow.field, SubjectPiiRow.ciphertext).where(
                        SubjectPiiRow.subject_id.in_(subjects)
                    )
                ).all()
            ),
            "consent": sorted(
                session.execute(
                    select(
                        ConsentStateRow.subject_id,
                        ConsentStateRow.purpose,
                        ConsentStateRow.partner_id,
                        ConsentStateRow.granted,
                        ConsentStateRow.since,
                    ).where(ConsentStateRow.subject_id.in_(subjects))
                ).all()
            ),
            "ledger": session.query(ConsentRecordRow).filter(ConsentRecordRow.subject_id.in_(subjects)).count(),
            "merges": session.query(IdentityMergeRow)
            .filter(
                or_(IdentityMergeRow.winner_subject_id.in_(subjects), IdentityMergeRow.loser_subject_id.in_(subjects))
            )
            .count(),
        }


def test_a_partner_event_naming_two_of_our_people_joins_nothing_and_says_nothing(live_server: LiveServer) -> None:
    ana_email, bob_phone = new_email(), new_phone()
    ana = first_party(live_server, ["analytics", "advertising"], email=ana_email)
    bob = first_party(live_server, ["analytics"], phone=bob_phone)
    assert ana != bob
    before = footprint(live_server.runtime, ana, bob)

    partner = live_server.issue_key(Role.PARTNER)
    joining = identified(email=ana_email, phone=bob_phone)
    answer = ingest(live_server, partner, joining)

    assert footprint(live_server.runtime, ana, bob) == before, "a partner's event merged, moved PII or changed consent"
    assert subjects_of_events(live_server, joining["messageId"]) == {}, "stored on one of two people at a guess"
    strangers = identified(email=new_email(), phone=new_phone())
    assert answer == ingest(live_server, partner, strangers)
    assert answer["rejected"] == []


def test_a_partners_gpc_withdraws_sharing_with_it_and_not_our_advertising(live_server: LiveServer) -> None:
    email = new_email()
    first_party(live_server, ["analytics", "advertising"], email=email)
    partner_id = live_server.new_partner().id
    partner = live_server.issue_key(Role.PARTNER, partner_id=partner_id)
    ingest(live_server, partner, identified(email=email))  # the person shares with this partner
    ingest(live_server, partner, identified(email=email, consent={"gpc": True}))
    ingest(live_server, partner, identified(email=email, consent={"purposes": ["analytics"], "gpc": True}))

    compliance = live_server.issue_key(Role.COMPLIANCE)
    states = live_server.graphql(CONSENT, token=compliance, variables={"email": email}).json()["data"]["consent"]
    granted = {(s["purpose"], s["partnerId"]): s["granted"] for s in states["states"]}
    assert granted[("ADVERTISING", None)] is True, "a partner's GPC withdrew our own advertising"
    assert granted[("ANALYTICS", None)] is True
    assert granted[("SHARING", partner_id)] is False, "a partner's GPC left sharing with it standing"


def test_an_identifier_a_partner_planted_does_not_steer_our_own_records(live_server: LiveServer) -> None:
    ana_email, planted = new_email(), new_phone()
    ana = first_party(live_server, ["analytics"], email=ana_email)
    bob_email = new_email()
    bob = first_party(live_server, ["analytics"], email=bob_email)
    partner = live_server.issue_key(Role.PARTNER)
    planting = identified(email=ana_email, phone=planted)
    ingest(live_server, partner, planting)
    assert subjects_of_events(live_server, planting["messageId"]) == {planting["messageId"]: ana}
    before = footprint(live_server.runtime, ana)

    admin = live_server.issue_key(Role.ADMIN)
    ours_alone = identified(phone=planted)
    ours_with_bob = identified(email=bob_email, phone=planted)
    ingest(live_server, admin, ours_alone)
    ingest(live_server, admin, ours_with_bob)

    owners = subjects_of_events(live_server, ours_alone["messageId"], ours_with_bob["messageId"])
    assert owners[ours_alone["messageId"]] != ana, "our record followed a phone the partner attached"
    assert owners[ours_with_bob["messageId"]] == bob, "our record was pulled towards the partner's subject"
    assert footprint(live_server.runtime, ana) == before, "the planted phone joined Ana to our records"


def test_a_partner_cannot_store_events_or_statements_for_purposes_it_did_not_declare(
    live_server: LiveServer,
) -> None:
    email = new_email()
    person = first_party(live_server, ["analytics", "advertising"], email=email)
    partner_id = live_server.new_partner(purposes=(Purpose.ANALYTICS,)).id
    partner = live_server.issue_key(Role.PARTNER, partner_id=partner_id)
    before = footprint(live_server.runtime, person)

    ad = identified(email=email, type="ad_click", channel="ads", consent={"purposes": ["advertising"]})
    answer = ingest(live_server, partner, ad)
    assert [r["code"] for r in answer["rejected"]] == ["PURPOSE_NOT_DECLARED"]
    stranger_ad = {**ad, "messageId": f"m-{secrets.token_hex(6)}", "context": {"traits": {"email": new_email()}}}
    assert ingest(live_server, partner, stranger_ad)["rejected"] == answer["rejected"]

    undeclared_statement = identified(email=email, consent={"purposes": ["advertising"]})
    ingest(live_server, partner, undeclared_statement)

    assert subjects_of_events(live_server, ad["messageId"], undeclared_statement["messageId"]) == {}
    assert footprint(live_server.runtime, person) == before, "a statement for an undeclared purpose was recorded"


def test_a_partner_reads_no_one_for_a_purpose_it_did_not_declare(live_server: LiveServer) -> None:
    """The read-time rule every partner read goes through (``subjects_allowed``)."""
    email = new_email()
    person = first_party(live_server, ["analytics", "advertising"], email=email)
    partner_id = live_server.new_partner(purposes=(Purpose.ANALYTICS,)).id
    partner = live_server.issue_key(Role.PARTNER, partner_id=partner_id)
    ingest(live_server, partner, identified(email=email))  # sharing with this partner granted
    with live_server.runtime.sessions() as session:
        assert consent.subjects_allowed(session, [person], Purpose.ANALYTICS, partner_id=partner_id) == {person}
        assert consent.subjects_allowed(session, [person], Purpose.ADVERTISING, partner_id=partner_id) == set()


def test_a_file_naming_a_partner_gets_the_same_limits_from_the_cli(runtime: Runtime, tmp_path: Path) -> None:
    """``audience import`` of rows that name a partner: its GPC, its two-people rows and its ad
    events for an undeclared purpose change none of our people."""
    email, phone = new_email(), new_phone()
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        create_partner(unit.session, name="acme", purposes=[Purpose.ANALYTICS], now=unit.clock())
    earlier = datetime.now(UTC) - timedelta(hours=2)
    ours = [
        batch_event(email=email, consent_purposes=["analytics", "advertising"], timestamp=earlier),
        batch_event(phone=phone, consent_purposes=["analytics"], timestamp=earlier),
    ]
    assert batch_ingest(runtime, ours, source="web").accepted == 2
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = [
        ("f-gpc", "page_view", "partner", when, email, "", "acme", "", "true"),
        ("f-two", "page_view", "partner", when, email, phone, "acme", "analytics", "false"),
        ("f-ad", "ad_click", "ads", when, email, "", "acme", "advertising", "false"),
    ]
    csv_file = tmp_path / "partner.csv"
    csv_file.write_text(
        "message_id,event,channel,timestamp,email,phone,partner,consent_purposes,gpc\n"
        + "".join(",".join(row) + "\n" for row in rows),
        encoding="utf-8",
    )
    with runtime.sessions() as session:
        people = sorted(set(session.scalars(select(EventRow.subject_id).where(EventRow.source == "web"))))
    before = footprint(runtime, *people)

    env = {
        "AUDIENCE_DATA_DIR": str(runtime.settings.data_dir),
        "AUDIENCE_DATABASE_URL": runtime.settings.database_url,
        "AUDIENCE_KEYRING": dumps_keyring(runtime.keyring),
    }
    run = run_audience("import", str(csv_file), directory=tmp_path, env=env)
    assert run.returncode == 2, "a file of which nothing was accepted fails the import"
    assert "nothing was accepted" in run.stderr
    assert footprint(runtime, *people) == before, "a partner's row changed one of our people"
    assert "PURPOSE_NOT_DECLARED" in run.stdout
    assert "AMBIGUOUS_IDENTITY" in run.stdout
    with runtime.sessions() as session:
        keys = runtime.kit.message_keys.digest_many([r[0] for r in rows])
        from_file = session.scalars(select(EventRow.message_key).where(EventRow.message_key.in_(keys)))
        assert from_file.all() == []
