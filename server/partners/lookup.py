"""The visitor lookup: which of its granted segments a visitor is in, and what interests them, for a
partner that names the visitor by an identifier it sent us itself.

What a partner may name. Only identifiers linked in *its own* scope (``identities.partner_id`` =
this partner: every partner user id, device id and email it sent, also those we link ourselves,
see docs/ingestion.md).
Our own links and other partners' are never followed, so a partner cannot probe with a list of
emails, nor reach a person through another partner's user id, an internal subject id or another
partner's pseudonym (none of these is an identifier of its scope).

One answer for everyone it may not see. An identifier that is unknown, malformed, never sent by
this partner, or whose person does not consent, is restricted (Art. 18) or erased, gets the same
answer: ``asOf``, no segment, no interest. The answer carries no pseudonym and no flag, so there is
nothing to tell them apart by; and the same statements and computation run whoever is asked (an
unknown visitor is looked up as a decoy, a subject this partner sent whose answer is thrown
away), so the time taken does not tell them apart either (``bench/partner_lookup_timing.py``
measures it).

What is shown, read at query time, so that a withdrawal, a restriction or an erasure applies to
the very next lookup, before any evaluation runs:

- a segment, when the subject's stay in it is open (``segment_memberships``), the segment is
  granted to this partner (grant not revoked), the partner still declares the grant's purpose,
  and the subject grants that purpose and sharing with this partner;
- the top-k interests (k <= ``MAX_TOP_INTERESTS``), when the partner declares ``personalization``
  and the subject grants ``profiling`` (interests are a profiling product), ``personalization``
  (what a partner uses them for) and sharing with this partner; computed as the profile computes
  them (``server.partners.interests``), sensitive topics never;
- nothing at all for a subject under a restriction.

Not audited one entry per lookup: the answer holds no personal data (segment names and topic
scores of a pseudonymous visitor the partner itself identified), and an audit entry is a write
that takes the audit chain's turn, which would cap lookups at the writer's pace (SQLite has one).
Lookups are counted by the operation metrics (``audience_graphql_operations_total``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentPurpose
from privacy.identifiers import IdentifierKind, InvalidIdentifier, normalize
from privacy.purposes import Purpose
from server.partners.grants import PartnerScope
from server.partners.interests import Accumulator, InterestIndex, ranked_interests
from server.privacy_kit import PrivacyKit
from server.profiles.features import as_of_day
from server.storage.lookup import select_where_in
from server.storage.restrictions import unrestricted

__all__ = [
    "DEFAULT_TOP_INTERESTS",
    "MAX_TOP_INTERESTS",
    "NO_SUBJECT",
    "VisitorAnswer",
    "VisitorInterest",
    "VisitorSegment",
    "subject_in_partner_scope",
    "visitor",
]

DEFAULT_TOP_INTERESTS: Final = 5
MAX_TOP_INTERESTS: Final = 10
NO_SUBJECT: Final = 0
"""Subject ids start at 1: the lookups of an unknown visitor run for this id and find nothing."""
INTEREST_PURPOSES: Final = frozenset({ConsentPurpose.PROFILING.value, ConsentPurpose.PERSONALIZATION.value})

_IDENTITY = (
    "SELECT key_version, pseudonym, subject_id FROM identities WHERE kind = ? AND partner_id = ? AND pseudonym {in}"
)
_CONSENT = (
    "SELECT purpose, partner_id FROM consent_state WHERE granted AND (partner_id = ? OR "
    f"(purpose = ? AND partner_id = ?)) AND {unrestricted('consent_state.subject_id')} AND subject_id {{in}}"
)
_SEGMENTS = (
    "SELECT s.name, g.purpose FROM segment_memberships m JOIN segment_grants g ON g.segment_id = m.segment_id "
    "JOIN segments s ON s.id = g.segment_id WHERE g.partner_id = ? AND g.revoked_at IS NULL "
    "AND m.exited_at IS NULL AND m.subject_id {in}"
)
_ACCUMULATORS = "SELECT topic, score, as_of FROM profile_interests WHERE subject_id {in}"
_BUSIEST_DAY = (
    "SELECT MAX(total) FROM (SELECT SUM(events) AS total FROM profile_daily WHERE day <= ? AND subject_id {in} "
    "GROUP BY day) days"
)


@dataclass(frozen=True, slots=True)
class VisitorSegment:
    name: str
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class VisitorInterest:
    topic: str
    name: str
    score: float


@dataclass(frozen=True, slots=True)
class VisitorAnswer:
    as_of: datetime
    segments: tuple[VisitorSegment, ...]
    interests: tuple[VisitorInterest, ...]


def subject_in_partner_scope(
    session: Session, kit: PrivacyKit, *, partner_id: int, kind: IdentifierKind, value: str
) -> int | None:
    """The subject this partner linked ``value`` to, under any identifier-key version; None when
    the partner never sent it (or it does not normalize: then it cannot have been sent)."""
    try:
        identifier = normalize(
            kind, value, partner_id=partner_id if kind is IdentifierKind.PARTNER_USER_ID else None, rules=kit.rules
        )
    except InvalidIdentifier:
        return None
    candidates = {(p.key_version, p.digest) for p in kit.pseudonymizer.pseudonyms_for_all_versions(identifier)}
    rows = select_where_in(
        session, _IDENTITY, sorted(digest for _, digest in candidates), params=(kind.value, partner_id)
    )
    found = sorted(int(subject) for version, digest, subject in rows if (int(version), bytes(digest)) in candidates)
    return found[0] if found else None


def visitor(
    session: Session,
    kit: PrivacyKit,
    *,
    partner: PartnerScope,
    kind: IdentifierKind,
    value: str,
    top_k: int,
    index: InterestIndex,
    now: datetime,
) -> VisitorAnswer:
    """What this partner may see of the visitor it names; the answer of an unknown visitor otherwise."""
    if not 0 <= top_k <= MAX_TOP_INTERESTS:
        raise ValueError(f"top_k must be between 0 and {MAX_TOP_INTERESTS}")
    found = subject_in_partner_scope(session, kit, partner_id=partner.partner_id, kind=kind, value=value)
    subject = [found if found is not None else _decoy(session, partner.partner_id)]
    # The same statements and the same computation whoever is asked; what they found is weighed
    # last, and for a decoy it is thrown away.
    consents = select_where_in(
        session, _CONSENT, subject, params=(NO_PARTNER, ConsentPurpose.SHARING.value, partner.partner_id)
    )
    memberships = select_where_in(session, _SEGMENTS, subject, params=(partner.partner_id,))
    accumulators = select_where_in(session, _ACCUMULATORS, subject)
    busiest = select_where_in(session, _BUSIEST_DAY, subject, params=(as_of_day(now),))
    granted = {purpose for purpose, scope in consents if scope == NO_PARTNER}
    if found is None or not any(scope == partner.partner_id for _, scope in consents):
        granted = set()  # a decoy, or no sharing with this partner: nothing reaches it
    segments = sorted(
        {
            VisitorSegment(name, Purpose(purpose))
            for name, purpose in memberships
            if purpose in granted and purpose in partner.purposes
        },
        key=lambda segment: (segment.name, segment.purpose.value),
    )
    interests = [
        VisitorInterest(ranked.topic, ranked.name, ranked.score)
        for ranked in ranked_interests(
            index,
            (Accumulator(topic, float(score), _utc(as_of)) for topic, score, as_of in accumulators),
            busiest_day_events=None if not busiest or busiest[0][0] is None else int(busiest[0][0]),
            as_of=now,
            top_k=top_k,
        )
    ]
    if not (granted >= INTEREST_PURPOSES and Purpose.PERSONALIZATION in partner.purposes):
        interests = []
    return VisitorAnswer(as_of=now, segments=tuple(segments), interests=tuple(interests))


_DECOYS: dict[int, int] = {}
_DECOY_LIMIT: Final = 4_096
_DECOY = "SELECT subject_id FROM identities WHERE partner_id {in} ORDER BY id DESC LIMIT 1"


def _decoy(session: Session, partner_id: int) -> int:
    """Whom an unknown visitor's lookup reads instead: a subject this partner sent, whose rows cost
    what a real visitor's cost (an unknown id would read nothing and answer measurably faster).
    Picked once per partner and process (a decoy erased since reads nothing, which only makes the
    unknown answer a little faster again); what is read for it is never shown."""
    decoy = _DECOYS.get(partner_id)
    if decoy is None:
        rows = select_where_in(session, _DECOY, [partner_id])
        if not rows:
            return NO_SUBJECT  # a partner that sent no one yet: nobody to look like
        decoy = int(rows[0][0])
        if len(_DECOYS) >= _DECOY_LIMIT:
            _DECOYS.clear()
        _DECOYS[partner_id] = decoy
    return decoy


def _utc(value: Any) -> datetime:
    """A timestamp as the driver returns it: naive UTC from PostgreSQL, text from SQLite."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
