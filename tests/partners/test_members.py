"""A partner pages through a granted segment's members, as its own pseudonyms, while it changes."""

from __future__ import annotations

import base64

from privacy.purposes import Purpose
from server.partners.cursors import MEMBERS_KIND
from tests.partners import seed
from tests.partners.visitors import (
    all_members,
    members_page,
    partner_app,
    people_sent_by,
    record_consent,
    subject_of,
)
from tests.support.live_server import LiveServer


def _people(server: LiveServer, partner_count: int = 1, people: int = 5):  # type: ignore[no-untyped-def]
    partners = [partner_app(server) for _ in range(partner_count)]
    return partners, people_sent_by(server, partners, people)


def test_pages_are_stable_while_members_enter_and_leave(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    (partner,), persons = _people(live_server, people=6)
    subjects = [subject_of(live_server, partner, p) for p in persons]
    segment_id, name = seed.segment(runtime)
    granted = seed.grant(runtime, segment_id, partner.id, Purpose.PERSONALIZATION)
    first_five, newcomer = subjects[:5], subjects[5]
    seed.enter(runtime, segment_id, first_five, told=[granted])
    at_snapshot = sorted(first_five)
    expected = runtime.kit.partner_pseudonyms.encode_many(partner.id, at_snapshot)

    page = members_page(live_server, partner.token, name, first=2)
    assert [edge["node"] for edge in page["edges"]] == expected[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    # Meanwhile the last member leaves, a newcomer enters, and the first leaves and comes back.
    seed.leave(runtime, segment_id, [at_snapshot[-1], at_snapshot[0]], told=[granted])
    seed.enter(runtime, segment_id, [newcomer, at_snapshot[0]], told=[granted])
    rest: list[str] = []
    after = page["pageInfo"]["endCursor"]
    while after is not None:
        page = members_page(live_server, partner.token, name, first=2, after=after)
        rest.extend(edge["node"] for edge in page["edges"])
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert expected[:2] + rest == expected, "a page moved while the segment changed"

    now = sorted([*at_snapshot[:-1], newcomer])
    assert all_members(live_server, partner.token, name) == runtime.kit.partner_pseudonyms.encode_many(partner.id, now)


def test_a_withdrawal_hides_a_member_from_the_next_page_on(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    (partner,), persons = _people(live_server, people=3)
    subjects = [subject_of(live_server, partner, p) for p in persons]
    segment_id, name = seed.segment(runtime)
    seed.enter(
        runtime, segment_id, subjects, told=[seed.grant(runtime, segment_id, partner.id, Purpose.PERSONALIZATION)]
    )
    first = members_page(live_server, partner.token, name, first=1)
    assert len(all_members(live_server, partner.token, name)) == 3

    for person in persons:
        record_consent(live_server, person, "SHARING", granted=False, partner_id=partner.id)
    assert members_page(live_server, partner.token, name, first=10, after=first["pageInfo"]["endCursor"])["edges"] == []
    assert all_members(live_server, partner.token, name) == []


def test_first_is_bounded_and_a_cursor_names_its_own_segment(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    (partner,), persons = _people(live_server, people=2)
    subjects = [subject_of(live_server, partner, p) for p in persons]
    one, one_name = seed.segment(runtime)
    two, two_name = seed.segment(runtime)
    for segment_id in (one, two):
        seed.enter(
            runtime, segment_id, subjects, told=[seed.grant(runtime, segment_id, partner.id, Purpose.PERSONALIZATION)]
        )
    for first in (0, 1001):
        refused = members_page(live_server, partner.token, one_name, first=first)
        assert [e["code"] for e in refused["errors"]] == ["INVALID_FIRST"]
    cursor = members_page(live_server, partner.token, one_name, first=1)["pageInfo"]["endCursor"]
    crossed = members_page(live_server, partner.token, two_name, first=1, after=cursor)
    assert [(e["code"], e["message"]) for e in crossed["errors"]] == [
        ("BAD_CURSOR", "after was returned for another segment")
    ]
    # Not even sealed: what the cursor holds, opened with the server's key, names no subject id.
    sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    opened = runtime.kit.token_sealer.unseal(cursor, kind=MEMBERS_KIND, holder=partner.id)
    for held in (sealed, opened):
        for subject in subjects:
            assert str(subject).encode() not in held, "a cursor carries a subject id"
            assert subject.to_bytes(8, "big") not in held, "a cursor carries a subject id"
