"""A partner looks up a visitor it sent us: its granted segments and top interests, over HTTP."""

from __future__ import annotations

from privacy.purposes import Purpose
from server.auth.principal import Role
from tests.partners import seed
from tests.partners.visitors import (
    RUNNING,
    SENSITIVE,
    known_person,
    lookup,
    partner_app,
    record_consent,
    sent_by,
    subject_of,
    without_time,
)
from tests.support.live_server import LiveServer

PROFILE = """
query($email: String!) { profile(identifier: {kind: EMAIL, value: $email}) { interests { topic name score } } }"""


def test_a_visitor_is_shown_in_its_granted_segments_with_the_profiles_interests(live_server: LiveServer) -> None:
    partner = partner_app(live_server, Purpose.ANALYTICS, Purpose.PERSONALIZATION)
    person = sent_by(live_server, partner, known_person(live_server))
    subject = subject_of(live_server, partner, person)
    runners, runners_name = seed.segment(live_server.runtime)
    spenders, _ = seed.segment(live_server.runtime)
    seed.enter(
        live_server.runtime,
        runners,
        [subject],
        told=[seed.grant(live_server.runtime, runners, partner.id, Purpose.PERSONALIZATION)],
    )
    seed.enter(live_server.runtime, spenders, [subject])  # in it, but not granted to this partner

    by_user = lookup(live_server, partner, "PARTNER_USER_ID", person.user_ids[partner.id], top_interests=3)
    by_device = lookup(live_server, partner, "DEVICE_ID", person.devices[partner.id], top_interests=3)
    by_email = lookup(live_server, partner, "EMAIL", person.email, top_interests=3)  # sent with them, known to us

    assert by_user["segments"] == [{"name": runners_name, "purpose": "PERSONALIZATION"}]
    assert without_time(by_device) == without_time(by_user)
    assert without_time(by_email) == without_time(by_user), "the email it sent is not the partner's to look up"
    admin = live_server.issue_key(Role.ADMIN)
    profile = live_server.graphql(PROFILE, token=admin, variables={"email": person.email}).json()["data"]["profile"]
    assert without_time(by_user)["interests"] == without_time(profile)["interests"][:3]
    topics = [interest["topic"] for interest in by_user["interests"]]
    assert topics == ["healthy-living", "healthy-living/fitness-and-exercise", RUNNING]
    assert SENSITIVE not in str(by_user)


def test_interests_need_profiling_and_personalization_and_a_partner_declared_for_personalization(
    live_server: LiveServer,
) -> None:
    analytics_only = partner_app(live_server, Purpose.ANALYTICS)
    person = sent_by(live_server, analytics_only, known_person(live_server), statement=["analytics"])
    assert lookup(live_server, analytics_only, "PARTNER_USER_ID", person.user_ids[analytics_only.id])["interests"] == []

    personalizer = partner_app(live_server, Purpose.ANALYTICS, Purpose.PERSONALIZATION)
    sent_by(live_server, personalizer, person)
    user_id = person.user_ids[personalizer.id]
    assert lookup(live_server, personalizer, "PARTNER_USER_ID", user_id)["interests"] != []
    record_consent(live_server, person, "PERSONALIZATION", granted=False)
    assert lookup(live_server, personalizer, "PARTNER_USER_ID", user_id)["interests"] == []


def test_a_segment_granted_for_a_purpose_the_visitor_does_not_grant_is_not_shown(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    person = sent_by(
        live_server, partner, known_person(live_server, purposes=["analytics", "personalization", "profiling"])
    )
    subject = subject_of(live_server, partner, person)
    ads, _ = seed.segment(live_server.runtime)
    analytics, analytics_name = seed.segment(live_server.runtime)
    seed.enter(
        live_server.runtime,
        ads,
        [subject],
        told=[seed.grant(live_server.runtime, ads, partner.id, Purpose.ADVERTISING)],
    )
    seed.enter(
        live_server.runtime,
        analytics,
        [subject],
        told=[seed.grant(live_server.runtime, analytics, partner.id, Purpose.ANALYTICS)],
    )
    answer = lookup(live_server, partner, "PARTNER_USER_ID", person.user_ids[partner.id])
    assert answer["segments"] == [{"name": analytics_name, "purpose": "ANALYTICS"}]


def test_top_interests_is_bounded(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    for k in (-1, 11):
        body = live_server.graphql(
            'query($k: Int!) { visitor(identifier: {kind: DEVICE_ID, value: "dev-1"}, topInterests: $k) { asOf } }',
            variables={"k": k},
            token=partner.token,
        ).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
