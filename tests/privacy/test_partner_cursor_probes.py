"""A partner app probes its cursors: reads them, alters them, lends them, keeps them across a rotation.

Cursors are sealed for the partner they are given to (``server.partners.cursors``). Everything goes
over HTTP to a real server, except the rotation probes, which call the same service functions
against the same database with a kit built from the rotated keyring, as a restarted server would.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from privacy.keyring import KeyPurpose, Keyring
from privacy.purposes import Purpose
from server.partners.cursors import CHANGES_KIND, MEMBERS_KIND
from server.partners.feed import segment_changes
from server.partners.grants import BAD_CURSOR, PartnerReadError, PartnerScope
from server.partners.members import segment_members
from server.privacy_kit import PrivacyKit, build_kit
from tests.partners import seed
from tests.partners.visitors import (
    PartnerApp,
    changes_page,
    members_page,
    partner_app,
    people_sent_by,
    subject_of,
    visible_person,
)
from tests.support.live_server import LiveServer

ROOT = KeyPurpose.PARTNER_PSEUDONYM_ROOT
NOT_RETURNED = "after is not a cursor this connection returned"


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _flipped(cursor: str, index: int) -> str:
    raw = bytearray(_raw(cursor))
    raw[index] ^= 0x80
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _refused(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["field"], e["code"], e["message"]) for e in page["errors"]]


def _granted_segment(server: LiveServer, partners: list[PartnerApp], people: int = 3) -> tuple[str, list[int]]:
    """A segment granted to every one of ``partners``, whose members every one of them sent."""
    runtime = server.runtime
    persons = people_sent_by(server, partners, people)
    subjects = sorted(subject_of(server, partners[0], person) for person in persons)
    segment_id, name = seed.segment(runtime)
    grants = [seed.grant(runtime, segment_id, partner.id, Purpose.PERSONALIZATION) for partner in partners]
    seed.enter(runtime, segment_id, subjects, told=grants)
    return name, subjects


def test_a_cursor_lent_to_another_partner_is_refused(live_server: LiveServer) -> None:
    owner, borrower = partner_app(live_server), partner_app(live_server)
    name, _ = _granted_segment(live_server, [owner, borrower])
    member = members_page(live_server, owner.token, name, first=1)["pageInfo"]["endCursor"]
    feed = changes_page(live_server, owner.token, first=1)["pageInfo"]["endCursor"]
    assert members_page(live_server, borrower.token, name, first=1)["errors"] == []  # the segment is its too

    lent_member = members_page(live_server, borrower.token, name, first=1, after=member)
    assert _refused(lent_member) == [("after", BAD_CURSOR, NOT_RETURNED)]
    assert lent_member["edges"] == []
    lent_feed = changes_page(live_server, borrower.token, after=feed)
    assert _refused(lent_feed) == [("after", BAD_CURSOR, NOT_RETURNED)]
    assert lent_feed["edges"] == []
    assert member not in str(lent_member)
    assert feed not in str(lent_feed)


def test_a_member_cursor_given_to_the_feed_and_back_is_refused(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    member = members_page(live_server, partner.token, seen.grant.segment, first=1)["pageInfo"]["endCursor"]
    feed = changes_page(live_server, partner.token, first=1)["pageInfo"]["endCursor"]
    assert _refused(changes_page(live_server, partner.token, after=member)) == [("after", BAD_CURSOR, NOT_RETURNED)]
    swapped = members_page(live_server, partner.token, seen.grant.segment, first=1, after=feed)
    assert _refused(swapped) == [("after", BAD_CURSOR, NOT_RETURNED)]


def test_one_flipped_byte_anywhere_is_refused(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    visible_person(live_server, partner)
    name = seen.grant.segment
    member = members_page(live_server, partner.token, name, first=1)["pageInfo"]["endCursor"]
    feed = changes_page(live_server, partner.token, first=1)["pageInfo"]["endCursor"]

    def read_members(after: str) -> dict[str, Any]:
        return members_page(live_server, partner.token, name, first=1, after=after)

    def read_feed(after: str) -> dict[str, Any]:
        return changes_page(live_server, partner.token, after=after)

    readers: list[tuple[str, Callable[[str], dict[str, Any]]]] = [(member, read_members), (feed, read_feed)]
    for cursor, read in readers:
        assert read(cursor)["errors"] == []
        length = len(_raw(cursor))
        for index in sorted({0, 1, 4, 5, 16, 17, length // 2, length - 17, length - 1}):
            forged = _flipped(cursor, index)
            page = read(forged)
            assert _refused(page) == [("after", BAD_CURSOR, NOT_RETURNED)], index
            assert page["edges"] == []
            assert forged not in str(page)


def test_a_decoded_cursor_shows_no_seq_grant_or_pseudonym(live_server: LiveServer) -> None:
    runtime = live_server.runtime
    partner = partner_app(live_server)
    seen = visible_person(live_server, partner)
    page = members_page(live_server, partner.token, seen.grant.segment, first=1)
    [edge] = page["edges"]
    entry = changes_page(live_server, partner.token, first=1)["edges"][0]
    sealer = runtime.kit.token_sealer
    member_payload = sealer.unseal(edge["cursor"], kind=MEMBERS_KIND, holder=partner.id)
    snapshot = int.from_bytes(member_payload[8:16], "big")
    seq = int.from_bytes(sealer.unseal(entry["cursor"], kind=CHANGES_KIND, holder=partner.id), "big")
    assert member_payload[16:].decode() == edge["node"]  # what is inside: the grant, the snapshot, the pseudonym

    numbers = {"grant": seen.grant.id, "snapshot": snapshot, "seq": seq, "subject": seen.subject}
    for cursor in (edge["cursor"], entry["cursor"]):
        raw = _raw(cursor)
        assert b"members" not in raw
        assert b"changes" not in raw
        assert edge["node"].encode() not in raw
        assert _raw(edge["node"][3:]) not in raw  # the pseudonym's own bytes
        assert f"{seen.grant.id}:{snapshot}".encode() not in raw
        for what, number in numbers.items():
            assert number.to_bytes(8, "big") not in raw, what
            if number < 2**32:  # past the header, which holds the key version
                assert number.to_bytes(4, "big") not in raw[5:], what
            if number >= 100:  # one or two digits would turn up in random bytes by chance
                assert str(number).encode() not in raw, what


def test_two_cursors_for_one_position_differ_and_both_work(live_server: LiveServer) -> None:
    partner = partner_app(live_server)
    name, _ = _granted_segment(live_server, [partner])
    token = partner.token
    once, again = (members_page(live_server, token, name, first=1) for _ in range(2))
    assert [e["node"] for e in once["edges"]] == [e["node"] for e in again["edges"]]
    assert once["pageInfo"]["endCursor"] != again["pageInfo"]["endCursor"]
    assert _raw(once["pageInfo"]["endCursor"])[:5] == _raw(again["pageInfo"]["endCursor"])[:5]  # one key version
    follows = [members_page(live_server, token, name, first=5, after=p["pageInfo"]["endCursor"]) for p in (once, again)]
    assert follows[0]["errors"] == follows[1]["errors"] == []
    assert [e["node"] for e in follows[0]["edges"]] == [e["node"] for e in follows[1]["edges"]]
    assert len(follows[0]["edges"]) == 2

    feed_once, feed_again = (changes_page(live_server, token, first=1) for _ in range(2))
    assert feed_once["pageInfo"]["endCursor"] != feed_again["pageInfo"]["endCursor"]
    resumed = [changes_page(live_server, token, after=p["pageInfo"]["endCursor"]) for p in (feed_once, feed_again)]
    assert resumed[0]["edges"] != []
    assert [e["node"] for e in resumed[0]["edges"]] == [e["node"] for e in resumed[1]["edges"]]


def _kit(server: LiveServer, keyring: Keyring) -> PrivacyKit:
    return build_kit(keyring, server.runtime.settings)


def _in_session(server: LiveServer, read: Callable[[Any], Any]) -> Any:
    with server.runtime.sessions() as session:
        return read(session)


@pytest.fixture
def rotated(live_server: LiveServer) -> tuple[Keyring, Keyring]:
    """The server's keyring with a new pseudonym-root version; and the same with the old one retired."""
    added = live_server.runtime.keyring.with_new_version(ROOT)
    return added, added.without_version(ROOT, live_server.runtime.keyring.current[ROOT])


def test_a_kept_member_cursor_works_across_a_rotation_until_its_version_is_retired(
    live_server: LiveServer, rotated: tuple[Keyring, Keyring]
) -> None:
    partner = partner_app(live_server)
    name, subjects = _granted_segment(live_server, [partner])
    scope = PartnerScope(partner_id=partner.id, purposes=frozenset(Purpose))
    kept = members_page(live_server, partner.token, name, first=1)["pageInfo"]["endCursor"]
    added, retired = (_kit(live_server, keys) for keys in rotated)

    def page(kit: PrivacyKit, after: str) -> Any:
        return _in_session(
            live_server,
            lambda session: segment_members(session, kit, partner=scope, segment=name, first=10, after=after),
        )

    after_rotation = page(added, kept)
    codec = added.partner_pseudonyms
    assert [codec.decode(partner.id, m.pseudonym) for m in after_rotation.members] == subjects[1:]
    assert all(m.pseudonym.startswith("v2.") for m in after_rotation.members)
    new_cursor = after_rotation.members[0].cursor
    assert _raw(new_cursor)[1:5] == (2).to_bytes(4, "big")

    with pytest.raises(PartnerReadError) as refused:
        page(retired, kept)
    assert (refused.value.code, refused.value.field, refused.value.message) == (BAD_CURSOR, "after", NOT_RETURNED)
    assert kept not in str(refused.value)
    assert [m.pseudonym for m in page(retired, new_cursor).members] == [after_rotation.members[1].pseudonym]


def test_a_kept_feed_cursor_works_across_a_rotation_until_its_version_is_retired(
    live_server: LiveServer, rotated: tuple[Keyring, Keyring]
) -> None:
    partner = partner_app(live_server)
    for _ in range(2):
        visible_person(live_server, partner)
    scope = PartnerScope(partner_id=partner.id, purposes=frozenset(Purpose))
    told = changes_page(live_server, partner.token, first=1000)["edges"]
    kept = told[0]["cursor"]
    added, retired = (_kit(live_server, keys) for keys in rotated)

    def page(kit: PrivacyKit, after: str) -> Any:
        return _in_session(live_server, lambda session: segment_changes(session, kit, partner=scope, after=after))

    after_rotation = page(added, kept)
    assert [e.pseudonym for e in after_rotation.entries] == [e["node"]["pseudonym"] for e in told[1:]]
    assert _raw(after_rotation.end_cursor)[1:5] == (2).to_bytes(4, "big")

    with pytest.raises(PartnerReadError) as refused:
        page(retired, kept)
    assert (refused.value.code, refused.value.field, refused.value.message) == (BAD_CURSOR, "after", NOT_RETURNED)
    resumed = page(retired, after_rotation.entries[0].cursor)
    assert [e.pseudonym for e in resumed.entries] == [e.pseudonym for e in after_rotation.entries[1:]]
    assert page(retired, after_rotation.end_cursor).entries == ()
    # Without a cursor the feed is read from the start: what a partner does once its cursor is refused.
    assert len(_in_session(live_server, lambda s: segment_changes(s, retired, partner=scope)).entries) == len(told)


def test_the_live_server_still_refuses_cursors_sealed_under_a_version_it_does_not_hold(
    live_server: LiveServer, rotated: tuple[Keyring, Keyring]
) -> None:
    """A cursor from a server already restarted on the new key, given to one that is not yet."""
    partner = partner_app(live_server)
    visible_person(live_server, partner)
    scope = PartnerScope(partner_id=partner.id, purposes=frozenset(Purpose))
    added = _kit(live_server, rotated[0])
    ahead = _in_session(live_server, lambda session: segment_changes(session, added, partner=scope, first=1))
    assert _refused(changes_page(live_server, partner.token, after=ahead.end_cursor)) == [
        ("after", BAD_CURSOR, NOT_RETURNED)
    ]
