"""The opaque cursors of member pages and of the change feed, sealed for the partner they are given to.

A member cursor carries the page's snapshot (a ``grant_changes.seq``), the grant it was taken on
and the last member as *this partner's pseudonym*, never a subject id. A feed cursor carries one
seq. Both are sealed (``privacy.sealed_tokens``: AES-256-GCM, random nonce) with the partner id and
the kind of cursor as associated data, so a cursor altered, truncated, made by hand, taken from
another partner or given as the other kind is refused as ``BAD_CURSOR``; the errors never repeat
the text sent.

What they hide: everything in them. The seq numbers are the change log's own, shared by every grant
of every partner, so in clear their gaps would tell a partner how many entries other partners'
grants got meanwhile, and grant ids how many grants exist; sealed, a cursor shows only its length
and key version, and two cursors for one position differ. A partner that keeps a cursor across a
rotation of the partner pseudonym root can still use it while the old version is in the keyring;
once that version is retired the cursor is refused, and the feed is read again from the start.

Why the member cursor keeps the pseudonym, decoded with the partner's codec on every continued
page, although the seal already proves the cursor is ours and this partner's: the position a page
starts after is the one value whose forgery would matter (an arbitrary subject id would let a
partner bisect internal ids), and the pseudonym keeps it one of this partner's members even if a
repeated GCM nonce ever let someone forge a seal; AES-SIV uses no nonce. It also keeps subject ids
out of cursors altogether, encrypted or not. The cost is a longer cursor (112 characters against 76
for a sealed subject id) and one AES-SIV decode per continued page.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from privacy.partner_pseudonyms import InvalidPseudonym, PartnerPseudonym, PartnerPseudonymCodec
from privacy.sealed_tokens import InvalidToken, TokenSealer
from server.partners.grants import BAD_CURSOR, PartnerReadError

__all__ = ["MemberCursor", "feed_cursor", "feed_seq", "member_cursor", "read_member_cursor"]

MEMBERS_KIND: Final = "partner-members.v1"
CHANGES_KIND: Final = "partner-changes.v1"
_MEMBER_POSITION: Final = struct.Struct(">QQ")  # grant id, snapshot seq; the pseudonym's text follows
_SEQ: Final = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class MemberCursor:
    grant_id: int
    snapshot: int
    after_subject: int


def _not_returned(field: str) -> PartnerReadError:
    return PartnerReadError(BAD_CURSOR, f"{field} is not a cursor this connection returned", field=field)


def _unseal(cursor: str, *, sealer: TokenSealer, kind: str, partner_id: int, field: str) -> bytes:
    try:
        return sealer.unseal(cursor, kind=kind, holder=partner_id)
    except InvalidToken:
        raise _not_returned(field) from None


def member_cursor(sealer: TokenSealer, *, partner_id: int, grant_id: int, snapshot: int, last: PartnerPseudonym) -> str:
    payload = _MEMBER_POSITION.pack(grant_id, snapshot) + last.encode("ascii")
    return sealer.seal(payload, kind=MEMBERS_KIND, holder=partner_id)


def read_member_cursor(
    cursor: str,
    *,
    sealer: TokenSealer,
    codec: PartnerPseudonymCodec,
    partner_id: int,
    grant_id: int,
    field: str = "after",
) -> MemberCursor:
    """The position ``cursor`` names on ``grant_id``'s pages, for this partner only."""
    payload = _unseal(cursor, sealer=sealer, kind=MEMBERS_KIND, partner_id=partner_id, field=field)
    if len(payload) <= _MEMBER_POSITION.size:
        raise _not_returned(field)
    sealed_grant, snapshot = _MEMBER_POSITION.unpack_from(payload)
    if sealed_grant != grant_id:
        raise PartnerReadError(BAD_CURSOR, f"{field} was returned for another segment", field=field)
    try:
        subject = codec.decode(partner_id, payload[_MEMBER_POSITION.size :].decode("ascii"))
    except (InvalidPseudonym, UnicodeDecodeError):
        raise _not_returned(field) from None
    return MemberCursor(grant_id=grant_id, snapshot=snapshot, after_subject=subject)


def feed_cursor(sealer: TokenSealer, *, partner_id: int, seq: int) -> str:
    return sealer.seal(_SEQ.pack(seq), kind=CHANGES_KIND, holder=partner_id)


def feed_seq(cursor: str | None, *, sealer: TokenSealer, partner_id: int, field: str = "after") -> int:
    """0 (the beginning) without a cursor."""
    if cursor is None:
        return 0
    payload = _unseal(cursor, sealer=sealer, kind=CHANGES_KIND, partner_id=partner_id, field=field)
    if len(payload) != _SEQ.size:
        raise _not_returned(field)
    (seq,) = _SEQ.unpack(payload)
    return int(seq)
