"""The opaque cursors of member pages and of the change feed.

A member cursor carries the page's snapshot (a ``grant_changes.seq``), the grant it was taken on
and the last member as *this partner's pseudonym*, never a subject id: continuing decodes the
pseudonym with the partner's key, so a cursor altered, forged or taken from another partner (whose
pseudonyms this key did not produce) is refused as ``BAD_CURSOR``. A feed cursor carries one seq.
Both are checked to be exactly what this module writes (re-encoded and compared), and the errors
never repeat the text sent.

What they do not hide: the seq numbers are the change log's own, shared by every grant, so their
gaps tell a partner how many entries other grants got meanwhile (a volume, never whose).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from privacy.partner_pseudonyms import InvalidPseudonym, PartnerPseudonym, PartnerPseudonymCodec
from server.partners.grants import BAD_CURSOR, PartnerReadError

__all__ = ["MemberCursor", "feed_cursor", "feed_seq", "member_cursor", "read_member_cursor"]

_MEMBERS: Final = re.compile(r"members:1:([0-9]{1,18}):([0-9]{1,18}):(v[0-9]{1,9}\.[A-Za-z0-9_-]{32})")
_CHANGES: Final = re.compile(r"changes:1:([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class MemberCursor:
    grant_id: int
    snapshot: int
    after_subject: int


def _encode(plain: str) -> str:
    return base64.urlsafe_b64encode(plain.encode("ascii")).decode("ascii")


def _decode(cursor: str, pattern: re.Pattern[str], field: str) -> re.Match[str]:
    try:
        plain = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        plain = ""
    match = pattern.fullmatch(plain)
    if match is None or _encode(plain) != cursor:
        raise PartnerReadError(BAD_CURSOR, f"{field} is not a cursor this connection returned", field=field)
    return match


def member_cursor(grant_id: int, snapshot: int, last: PartnerPseudonym) -> str:
    return _encode(f"members:1:{grant_id}:{snapshot}:{last}")


def read_member_cursor(
    cursor: str, *, codec: PartnerPseudonymCodec, partner_id: int, grant_id: int, field: str = "after"
) -> MemberCursor:
    """The position ``cursor`` names on ``grant_id``'s pages, for this partner only."""
    match = _decode(cursor, _MEMBERS, field)
    if int(match.group(1)) != grant_id:
        raise PartnerReadError(BAD_CURSOR, f"{field} was returned for another segment", field=field)
    try:
        subject = codec.decode(partner_id, match.group(3))
    except InvalidPseudonym:
        raise PartnerReadError(BAD_CURSOR, f"{field} is not a cursor this connection returned", field=field) from None
    return MemberCursor(grant_id=grant_id, snapshot=int(match.group(2)), after_subject=subject)


def feed_cursor(seq: int) -> str:
    return _encode(f"changes:1:{seq}")


def feed_seq(cursor: str | None, *, field: str = "after") -> int:
    """0 (the beginning) without a cursor."""
    return 0 if cursor is None else int(_decode(cursor, _CHANGES, field).group(1))
