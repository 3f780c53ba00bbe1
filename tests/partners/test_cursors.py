"""Member and feed cursors as a partner holds them: opaque, short, its own, and read back exactly."""

from __future__ import annotations

import base64
import re

import pytest

from privacy.keyring import generate_keyring
from privacy.partner_pseudonyms import PartnerPseudonymCodec
from privacy.sealed_tokens import TokenSealer
from server.partners.cursors import MemberCursor, feed_cursor, feed_seq, member_cursor, read_member_cursor
from server.partners.grants import BAD_CURSOR, PartnerReadError

KEYS = generate_keyring()
SEALER = TokenSealer(KEYS)
CODEC = PartnerPseudonymCodec(KEYS)
PARTNER, OTHER = 41_207, 41_208
GRANT, SNAPSHOT, SUBJECT, SEQ = 734_501_982, 9_120_034_117, 6_203_775_190_448_102_311, 8_807_412_356


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _member(partner: int = PARTNER) -> str:
    return member_cursor(
        SEALER, partner_id=partner, grant_id=GRANT, snapshot=SNAPSHOT, last=CODEC.encode(partner, SUBJECT)
    )


def _read(cursor: str, *, partner: int = PARTNER, grant: int = GRANT) -> MemberCursor:
    return read_member_cursor(cursor, sealer=SEALER, codec=CODEC, partner_id=partner, grant_id=grant)


def test_cursors_round_trip_as_short_ascii() -> None:
    member, feed = _member(), feed_cursor(SEALER, partner_id=PARTNER, seq=SEQ)
    assert _read(member) == MemberCursor(grant_id=GRANT, snapshot=SNAPSHOT, after_subject=SUBJECT)
    assert feed_seq(feed, sealer=SEALER, partner_id=PARTNER) == SEQ
    assert feed_seq(None, sealer=SEALER, partner_id=PARTNER) == 0
    assert feed_seq(feed_cursor(SEALER, partner_id=PARTNER, seq=0), sealer=SEALER, partner_id=PARTNER) == 0
    for cursor in (member, feed):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert (len(member), len(feed)) == (112, 55)


def test_a_decoded_cursor_shows_none_of_its_numbers_nor_the_pseudonym() -> None:
    pseudonym = CODEC.encode(PARTNER, SUBJECT)
    for cursor in (_member(), feed_cursor(SEALER, partner_id=PARTNER, seq=SEQ)):
        raw = _raw(cursor)
        for number in (GRANT, SNAPSHOT, SEQ, SUBJECT):
            assert str(number).encode() not in raw
            assert number.to_bytes(8, "big") not in raw
        assert pseudonym.encode() not in raw
        assert _raw(pseudonym[3:]) not in raw
        assert b"members" not in raw
        assert b"changes" not in raw


def test_one_position_gives_a_new_cursor_each_time() -> None:
    assert _member() != _member()
    assert _read(_member()) == _read(_member())
    assert feed_cursor(SEALER, partner_id=PARTNER, seq=SEQ) != feed_cursor(SEALER, partner_id=PARTNER, seq=SEQ)


def _refusal(error: pytest.ExceptionInfo[PartnerReadError]) -> tuple[str, str | None, str]:
    return error.value.code, error.value.field, error.value.message


def test_another_partners_or_another_kinds_cursor_is_refused_without_echo() -> None:
    theirs = _member(partner=OTHER)
    their_feed = feed_cursor(SEALER, partner_id=OTHER, seq=SEQ)
    refusals = []
    for attempt in (
        lambda: _read(theirs),
        lambda: _read(feed_cursor(SEALER, partner_id=PARTNER, seq=SEQ)),
        lambda: feed_seq(their_feed, sealer=SEALER, partner_id=PARTNER),
        lambda: feed_seq(_member(), sealer=SEALER, partner_id=PARTNER),
    ):
        with pytest.raises(PartnerReadError) as refused:
            attempt()
        refusals.append(_refusal(refused))
        assert theirs not in str(refused.value)
        assert their_feed not in str(refused.value)
    assert set(refusals) == {(BAD_CURSOR, "after", "after is not a cursor this connection returned")}


def test_a_cursor_of_another_segment_says_so() -> None:
    with pytest.raises(PartnerReadError) as refused:
        _read(_member(), grant=GRANT + 1)
    assert _refusal(refused) == (BAD_CURSOR, "after", "after was returned for another segment")


def test_a_sealed_cursor_whose_pseudonym_is_not_this_partners_is_refused() -> None:
    """Defence in depth: even a cursor sealed with the right key must name one of this partner's members."""
    for last in (CODEC.encode(OTHER, SUBJECT), str(SUBJECT), "", "é"):
        payload = GRANT.to_bytes(8, "big") + SNAPSHOT.to_bytes(8, "big") + last.encode()
        forged = SEALER.seal(payload, kind="partner-members.v1", holder=PARTNER)
        with pytest.raises(PartnerReadError) as refused:
            _read(forged)
        assert _refusal(refused) == (BAD_CURSOR, "after", "after is not a cursor this connection returned")


def test_a_feed_cursor_of_the_wrong_length_is_refused() -> None:
    forged = SEALER.seal(SEQ.to_bytes(8, "big") + b"\x00", kind="partner-changes.v1", holder=PARTNER)
    with pytest.raises(PartnerReadError) as refused:
        feed_seq(forged, sealer=SEALER, partner_id=PARTNER, field="cursor")
    assert _refusal(refused) == (BAD_CURSOR, "cursor", "cursor is not a cursor this connection returned")
