"""A partner app probes with its own key: whom it can see, whose segments, whose pseudonyms.

Every probe runs over HTTP against a real server with real keys. The people are made by real
ingestion and consent APIs; the segment rows are written as the evaluator writes them
(``tests.partners.seed``). An answer a partner may not have is always the answer of an unknown
visitor or of a segment that does not exist: the same JSON, nothing to tell them apart by.
"""

from __future__ import annotations

import base64
import secrets

import pytest

from privacy.identifiers import IdentifierKind, normalize
from privacy.partner_pseudonyms import PartnerPseudonym
from privacy.purposes import Purpose
from server.auth.principal import Role
from server.partners.cursors import feed_cursor, member_cursor, read_member_cursor
from server.subjects.service import find_subject
from tests.partners import seed
from tests.partners.visitors import (
    MEMBERS,
    VISITOR,
    all_members,
    carry_out,
    changes_page,
    known_person,
    lookup,
    members_page,
    partner_app,
    record_consent,
    sent_by,
    subject_of,
    visible_person,
    without_time,
)
from tests.support.live_server import LiveServer

UNKNOWN: dict[str, list[object]] = {"segments": [], "interests": []}


def _unknown(server: LiveServer, token_of: object, kind: str, value: str) -> bool:
    return without_time(lookup(server, token_of, kind, value)) == UNKNOWN  # type: ignore[arg-type]


def test_another_partners_segment_answers_like_one_that_does_not_exist(live_server: LiveServer) -> None:
    owner, prober = partner_app(live_server), partner_app(live_server)
    theirs = visible_person(live_server, owner)
    foreign = live_server.graphql(
        MEMBERS, token=prober.token, variables={"segment": theirs.grant.segment, "first": 10}
    ).json()
    missing = live_server.graphql(
        MEMBERS, token=prober.token, variables={"segment": f"no-such-{secrets.token_hex(3)}", "first": 10}
    ).json()
    assert foreign == missing
    assert [e["code"] for e in foreign["data"]["segmentMembers"]["errors"]] == ["SEGMENT_NOT_FOUND"]
    assert theirs.grant.segment not in str(foreign)
    granted = live_server.graphql("{ grantedSegments { name } }", token=prober.token).json()
    assert granted == {"data": {"grantedSegments": []}}


def test_probing_with_a_list_of_emails_learns_nothing(live_server: LiveServer) -> None:
    """The partner never sent these emails. One is a person in a segment granted to it who shares
    with it (and whom it may therefore see in its member pages, under a pseudonym only)."""
    runtime = live_server.runtime
    partner = partner_app(live_server)
    member = known_person(live_server)
    record_consent(live_server, member, "SHARING", granted=True, partner_id=partner.id)
    with runtime.sessions() as session:
        subject = find_subject(session, normalize(IdentifierKind.EMAIL, member.email), runtime.kit)
    assert subject is not None
    segment_id, name = seed.segment(runtime)
    seed.enter(
        runtime, segment_id, [subject], told=[seed.grant(runtime, segment_id, partner.id, Purpose.PERSONALIZATION)]
    )
    assert all_members(live_server, partner.token, name) == [runtime.kit.partner_pseudonyms.encode(partner.id, subject)]

    emails = [
        member.email,
        known_person(live_server).email,
        f"nobody.{secrets.token_hex(4)}@example.org",
        "not-an-email",
    ]
    answers = [without_time(lookup(live_server, partner, "EMAIL", email)) for email in emails]
    assert answers == [UNKNOWN] * len(emails)


def test_another_partners_identifiers_for_the_same_person_are_unknown(live_server: LiveServer) -> None:
    first, second = partner_app(live_server), partner_app(live_server)
    segment = seed.segment(live_server.runtime)
    person = visible_person(live_server, first, segment=segment).person
    sent_by(live_server, second, person)
    subject = subject_of(live_server, second, person)
    second_grant = seed.grant(live_server.runtime, segment[0], second.id, Purpose.PERSONALIZATION)
    seed.enter(live_server.runtime, seed.segment(live_server.runtime)[0], [subject], told=[second_grant])
    assert not _unknown(live_server, second, "PARTNER_USER_ID", person.user_ids[second.id])
    assert _unknown(live_server, second, "PARTNER_USER_ID", person.user_ids[first.id])
    assert _unknown(live_server, second, "DEVICE_ID", person.devices[first.id])
    assert _unknown(live_server, first, "DEVICE_ID", person.devices[second.id])


@pytest.mark.parametrize("step", ["withdraw sharing", "withdraw purpose", "restrict", "erase", "object"])
def test_a_person_who_withdraws_is_restricted_or_erased_is_unknown_at_the_next_query(
    live_server: LiveServer, step: str
) -> None:
    """Nothing re-evaluates the segment between the two lookups: the read itself applies the change."""
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    user_id = seen.person.user_ids[partner.id]
    before = lookup(live_server, partner, "PARTNER_USER_ID", user_id)
    assert before["segments"] != []
    assert before["interests"] != []
    if step == "withdraw sharing":
        record_consent(live_server, seen.person, "SHARING", granted=False, partner_id=partner.id)
    elif step == "withdraw purpose":
        record_consent(live_server, seen.person, "PERSONALIZATION", granted=False)
    elif step == "object":
        carry_out(live_server, "OBJECTION", seen.person)  # advertising only: this partner's grant stands
    else:
        carry_out(live_server, {"restrict": "RESTRICTION", "erase": "ERASURE"}[step], seen.person)
    after = without_time(lookup(live_server, partner, "PARTNER_USER_ID", user_id))
    if step == "object":
        assert after == without_time(before)
        return
    assert after == UNKNOWN
    assert all_members(live_server, partner.token, seen.grant.segment) == []


def test_an_internal_id_or_a_pseudonym_as_input_finds_no_one(live_server: LiveServer) -> None:
    first, second = partner_app(live_server), partner_app(live_server)
    segment = seed.segment(live_server.runtime)
    seen = visible_person(live_server, first, segment=segment)
    seed.grant(live_server.runtime, segment[0], second.id, Purpose.PERSONALIZATION)
    sent_by(live_server, second, seen.person)
    theirs = live_server.runtime.kit.partner_pseudonyms.encode(first.id, seen.subject)
    mine = live_server.runtime.kit.partner_pseudonyms.encode(second.id, seen.subject)
    for kind in ("PARTNER_USER_ID", "CUSTOMER_ID", "DEVICE_ID"):
        for value in (str(seen.subject), theirs, mine):
            assert _unknown(live_server, second, kind, value), (kind, value)


def test_two_partners_pseudonyms_for_one_person_share_nothing(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    first, second = partner_app(live_server), partner_app(live_server)
    segment_id, name = seed.segment(runtime)
    person = sent_by(live_server, second, visible_person(live_server, first, segment=(segment_id, name)).person)
    subject = subject_of(live_server, first, person)
    # The grant tells the second partner of the member at once, as a marketer's grant does. (Leaving
    # and entering again here raced the server's segment worker, which could drain the person's
    # event between the two and tell the first partner of the exit.)
    grants = [seed.grant(runtime, segment_id, second.id, Purpose.PERSONALIZATION)]

    [theirs] = all_members(live_server, first.token, name)
    [mine] = all_members(live_server, second.token, name)
    assert theirs != mine
    assert theirs[3:] not in mine
    assert mine[3:] not in theirs
    feed_first, feed_second = str(changes_page(live_server, first.token)), str(changes_page(live_server, second.token))
    assert mine not in feed_first
    assert theirs not in feed_second
    assert str(subject) not in feed_first + feed_second
    # The other partner's pseudonym, dressed up as a cursor of mine, is refused: in its own cursor (sealed
    # for the other partner), in the plain form cursors once had, and even sealed for me by someone
    # holding the key, at a real snapshot of my grant (the pseudonym inside must be one my key made).
    [their_cursor] = [e["cursor"] for e in members_page(live_server, first.token, name, first=1)["edges"]]
    [my_cursor] = [e["cursor"] for e in members_page(live_server, second.token, name, first=1)["edges"]]
    kit = runtime.kit
    mine_at = read_member_cursor(
        my_cursor, sealer=kit.token_sealer, codec=kit.partner_pseudonyms, partner_id=second.id, grant_id=grants[0].id
    )
    handmade = base64.urlsafe_b64encode(f"members:1:{grants[0].id}:{mine_at.snapshot}:{theirs}".encode()).decode()
    sealed_for_me = member_cursor(
        kit.token_sealer,
        partner_id=second.id,
        grant_id=grants[0].id,
        snapshot=mine_at.snapshot,
        last=PartnerPseudonym(theirs),
    )
    for forged in (their_cursor, handmade, sealed_for_me):
        refused = members_page(live_server, second.token, name, first=1, after=forged)
        assert [(e["code"], e["message"]) for e in refused["errors"]] == [
            ("BAD_CURSOR", "after is not a cursor this connection returned")
        ]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.COMPLIANCE, Role.ADMIN])
def test_other_roles_cannot_read_members_lookups_or_the_feed(live_server: LiveServer, role: Role) -> None:
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    token = live_server.issue_key(role)
    reads = [
        (MEMBERS, {"segment": seen.grant.segment, "first": 10}),
        (VISITOR, {"kind": "PARTNER_USER_ID", "value": seen.person.user_ids[partner.id], "k": 5}),
        ("{ segmentChanges { edges { cursor } } }", None),
        ("{ grantedSegments { name } }", None),
    ]
    for query, variables in reads:
        body = live_server.graphql(query, token=token, variables=variables).json()
        assert body["data"] is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
        assert seen.person.email not in str(body)


def test_a_revoked_grant_stops_every_read_at_once(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    user_id = seen.person.user_ids[partner.id]
    assert lookup(live_server, partner, "PARTNER_USER_ID", user_id)["segments"] != []
    cursor = members_page(live_server, partner.token, seen.grant.segment, first=1)["pageInfo"]["endCursor"]
    seed.revoke(live_server.runtime, seen.grant)
    assert lookup(live_server, partner, "PARTNER_USER_ID", user_id)["segments"] == []
    for after in (None, cursor):
        page = members_page(live_server, partner.token, seen.grant.segment, first=1, after=after)
        assert [e["code"] for e in page["errors"]] == ["SEGMENT_NOT_FOUND"]
    assert changes_page(live_server, partner.token)["edges"] == []


def test_forged_and_altered_cursors_are_refused_without_echo(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    name = seen.grant.segment
    cursor = members_page(live_server, partner.token, name, first=1)["pageInfo"]["endCursor"]
    kit = live_server.runtime.kit
    at = read_member_cursor(
        cursor, sealer=kit.token_sealer, codec=kit.partner_pseudonyms, partner_id=partner.id, grant_id=seen.grant.id
    )
    pseudonym = kit.partner_pseudonyms.encode(partner.id, at.after_subject)
    flipped = pseudonym[:-1] + ("A" if pseudonym[-1] != "A" else "B")
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[len(raw) // 2] ^= 0x01

    def plain(snapshot: int, last: str) -> str:
        """The form cursors had before they were sealed, which the server once accepted."""
        return base64.urlsafe_b64encode(f"members:1:{seen.grant.id}:{snapshot}:{last}".encode()).decode()

    def sealed(snapshot: int, last: str) -> str:
        """Sealed for this partner with the server's own key: only what is inside is wrong."""
        return member_cursor(
            kit.token_sealer,
            partner_id=partner.id,
            grant_id=seen.grant.id,
            snapshot=snapshot,
            last=PartnerPseudonym(last),
        )

    forgeries = [
        cursor[:-2],
        cursor + "A",
        base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(),
        plain(at.snapshot, pseudonym),
        plain(at.snapshot, flipped),
        sealed(at.snapshot, flipped),
        sealed(at.snapshot + 10**9, pseudonym),
        sealed(at.snapshot, str(seen.subject)),
        feed_cursor(kit.token_sealer, partner_id=partner.id, seq=at.snapshot),
    ]
    for forged in forgeries:
        page = members_page(live_server, partner.token, name, first=1, after=forged)
        assert [(e["field"], e["code"]) for e in page["errors"]] == [("after", "BAD_CURSOR")], forged
        assert forged not in str(page)
        assert page["edges"] == []


def test_known_and_unknown_visitors_without_consent_get_identical_answers(live_server: LiveServer) -> None:
    """Timing is measured in bench/partner_lookup_timing.py; here, the answers themselves."""
    partner = partner_app(live_server)
    refusing = sent_by(live_server, partner, known_person(live_server, purposes=["analytics"]), statement=["analytics"])
    seed.enter(
        live_server.runtime,
        (segment := seed.segment(live_server.runtime))[0],
        [subject_of(live_server, partner, refusing)],
        told=[seed.grant(live_server.runtime, segment[0], partner.id, Purpose.PERSONALIZATION)],
    )
    known = lookup(live_server, partner, "PARTNER_USER_ID", refusing.user_ids[partner.id])
    unknown = lookup(live_server, partner, "PARTNER_USER_ID", f"u-{secrets.token_hex(5)}")
    assert set(known) == set(unknown) == {"asOf", "segments", "interests"}
    assert without_time(known) == without_time(unknown) == UNKNOWN
