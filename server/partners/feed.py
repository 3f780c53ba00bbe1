"""The change feed: what this partner was told, entry by entry, from any point, as often as asked.

Entries are ``grant_changes`` rows of the partner's grants in force (revoked grants are left out
at once, old entries included), in ``seq`` order, each with the pseudonym it was written with.
The cursor is the last entry's seq, sealed for this partner (``server.partners.cursors``): a partner
that stores it resumes exactly where it stopped after any outage (across a key rotation too, while
the old key version is kept), and since writers of the log take turns
(``server.storage.locks``) no entry can commit behind a cursor already handed out.

The feed shows what the evaluator told, nothing live: a consent withdrawal, a restriction or an
erasure appears as the exit the evaluator (or erasure) writes. ``follow_changes`` is the same feed
pushed: it polls every ``POLL_INTERVAL_S`` and checks the API key again on each poll, so a key
revoked while a subscription runs ends it within one interval.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from privacy.partner_pseudonyms import PartnerPseudonym
from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.principal import Principal
from server.partners.cursors import feed_cursor, feed_seq
from server.partners.grants import PartnerReadError, PartnerScope, active_grants, partner_scope
from server.privacy_kit import PrivacyKit
from server.runtime import Runtime
from server.storage.base import UtcDateTime

__all__ = [
    "MAX_PAGE",
    "POLL_INTERVAL_S",
    "ChangeEntry",
    "ChangePage",
    "KeyRevoked",
    "follow_changes",
    "segment_changes",
]

MAX_PAGE: Final = 1_000
DEFAULT_PAGE: Final = 100
POLL_INTERVAL_S: Final = 0.25
"""How often a subscription looks for new entries: a quarter of DESIGN's one-second budget for a
change to reach a partner."""

_CHANGES = (
    text(
        "SELECT seq, grant_id, kind, pseudonym, at FROM grant_changes"
        " WHERE grant_id IN :grants AND seq > :after ORDER BY seq LIMIT :limit"
    )
    .bindparams(bindparam("grants", expanding=True))
    .columns(at=UtcDateTime())
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    cursor: str
    kind: str
    pseudonym: PartnerPseudonym
    segment: str
    purpose: Purpose
    at: datetime


@dataclass(frozen=True, slots=True)
class ChangePage:
    entries: tuple[ChangeEntry, ...]
    has_next_page: bool
    end_cursor: str
    """The last entry's cursor, or the position asked from (sealed anew) when there is none: where to
    poll next."""


class KeyRevoked(Exception):
    """The API key of a running subscription was revoked: the subscription ends."""


def segment_changes(
    session: Session,
    kit: PrivacyKit,
    *,
    partner: PartnerScope,
    after: str | None = None,
    first: int = DEFAULT_PAGE,
) -> ChangePage:
    """Entries of the partner's grants in force after the cursor ``after``, oldest first.

    Every cursor is sealed under the current key version, the end cursor of an empty page too, so a
    partner polling an idle feed moves to a new key version on its next poll after a rotation.
    """
    if not 1 <= first <= MAX_PAGE:
        raise PartnerReadError("INVALID_FIRST", f"first must be between 1 and {MAX_PAGE}", field="first")
    sealer, partner_id = kit.token_sealer, partner.partner_id
    start = feed_seq(after, sealer=sealer, partner_id=partner_id)
    grants = {grant.grant_id: grant for grant in active_grants(session, partner)}
    if not grants:
        return ChangePage(
            entries=(), has_next_page=False, end_cursor=feed_cursor(sealer, partner_id=partner_id, seq=start)
        )
    rows = session.execute(_CHANGES, {"grants": sorted(grants), "after": start, "limit": first + 1}).all()
    entries = tuple(
        ChangeEntry(
            cursor=feed_cursor(sealer, partner_id=partner_id, seq=int(seq)),
            kind=kind,
            pseudonym=PartnerPseudonym(pseudonym),
            segment=grants[int(grant_id)].segment,
            purpose=grants[int(grant_id)].purpose,
            at=at,
        )
        for seq, grant_id, kind, pseudonym, at in rows[:first]
    )
    end = entries[-1].cursor if entries else feed_cursor(sealer, partner_id=partner_id, seq=start)
    return ChangePage(entries=entries, has_next_page=len(rows) > first, end_cursor=end)


async def follow_changes(
    runtime: Runtime, principal: Principal, *, after: str | None = None, interval_s: float = POLL_INTERVAL_S
) -> AsyncIterator[ChangeEntry]:
    """Every entry after ``after``, then each new one as it is written, until the key is revoked.

    The key and its partner's declared purposes are read again on every poll (one indexed read).
    """
    # A bad cursor is refused before anything is pushed.
    feed_seq(after, sealer=runtime.kit.token_sealer, partner_id=partner_scope(principal).partner_id)
    cursor = after
    while True:
        current = await _in_session(runtime, lambda session: api_keys.current_principal(session, principal))
        if current is None:
            raise KeyRevoked
        scope = partner_scope(current)
        page = await _in_session(runtime, functools.partial(_page, runtime.kit, scope=scope, after=cursor))
        for entry in page.entries:
            yield entry
        cursor = page.end_cursor
        if not page.has_next_page:
            await asyncio.sleep(interval_s)


def _page(kit: PrivacyKit, session: Session, *, scope: PartnerScope, after: str | None) -> ChangePage:
    return segment_changes(session, kit, partner=scope, after=after, first=MAX_PAGE)


async def _in_session(runtime: Runtime, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with runtime.sessions() as session:
            return work(session)

    return await run_in_threadpool(run)
