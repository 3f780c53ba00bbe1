"""The profile of one person, read by identifier for compliance and admin: computed at read time.

The identifier is normalized and looked up through its keyed hash exactly as consent reads are
(``server.subjects.service.find_subject``, under every key version). A profile is shown only
while the subject grants ``profiling``, checked in ``consent_state`` on every read, so a
withdrawal hides it from the very next one whatever the stored state still holds. An unknown
identifier, a person without that consent and a person without state all get the same answer,
``None``, so the answer never tells them apart. Every read is audited (``profile.read``), those
that find nothing included; the entry names the pseudonymous subject, never the identifier.

The answer holds no personal data: no identifier, no subject id, traits only as coarse bands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from privacy.identifiers import InvalidIdentifier, normalize
from server.consent.requests import RawIdentifier
from server.frames.vocabulary import CHANNEL_ORDER
from server.profiles.config import ProfileConfig
from server.profiles.features import WINDOWS, LifecycleStage, channel_column, features, top_interests
from server.profiles.inputs import feature_inputs
from server.profiles.store import consenting
from server.profiles.tiers import ValueTier, latest_cut_points
from server.runtime import UnitOfWork
from server.subjects.service import find_subject
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "ChannelShare",
    "EventCount",
    "Interest",
    "Profile",
    "RepeatPurchases",
    "WindowCounts",
    "profile_of",
    "read_profile",
]


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """A count over the last 7, 30 and 90 UTC days (``as_of``'s day included) and over all days."""

    last_7_days: int
    last_30_days: int
    last_90_days: int
    lifetime: int


@dataclass(frozen=True, slots=True)
class ChannelShare:
    channel: str
    share: float


@dataclass(frozen=True, slots=True)
class EventCount:
    type: str
    events: int


@dataclass(frozen=True, slots=True)
class Interest:
    """A topic's score and why: its events by type, the last one's time, how fast it fades."""

    topic: str
    name: str
    score: float
    raw: float
    half_life_days: float
    last_seen: datetime | None
    counts: tuple[EventCount, ...]


@dataclass(frozen=True, slots=True)
class RepeatPurchases:
    """The ``lifetimes`` summary in days: ``t`` is its ``T``."""

    frequency: int
    recency: int
    t: int
    monetary: float


@dataclass(frozen=True, slots=True)
class Profile:
    as_of: datetime
    days_since_last_event: int
    days_since_last_purchase: int | None
    events: WindowCounts
    active_days: WindowCounts
    purchases: WindowCounts
    revenue_90_days: float
    revenue_lifetime: float
    average_order_value_90_days: float | None
    average_order_value_lifetime: float | None
    channel_mix: tuple[ChannelShare, ...]
    device_count: int
    identifier_count: int
    lifecycle_stage: LifecycleStage
    value_tier: ValueTier | None
    age_band: str | None
    region: str | None
    repeat_purchases: RepeatPurchases | None
    bot_like: bool
    interests: tuple[Interest, ...]


def profile_of(
    unit: UnitOfWork, identifier: RawIdentifier, *, config: ProfileConfig, taxonomy: Taxonomy, now: datetime
) -> Profile | None:
    """The profile as of ``now`` of the person behind ``identifier``; None when there is none to show."""
    kind, value, partner_id = identifier.kind, identifier.value, identifier.partner_id
    try:
        normalized = normalize(kind, value, partner_id=partner_id, rules=unit.kit.rules)
    except InvalidIdentifier:
        subject_id = None  # matches nobody: answered and audited like an unknown identifier
    else:
        subject_id = find_subject(unit.session, normalized, unit.kit)
    profile = (
        None
        if subject_id is None
        else read_profile(unit.session, subject_id, config=config, taxonomy=taxonomy, now=now)
    )
    unit.audit(
        "profile.read",
        target=None if subject_id is None else f"subject:{subject_id}",
        details={"shown": profile is not None},
    )
    return profile


def read_profile(
    session: Session, subject_id: int, *, config: ProfileConfig, taxonomy: Taxonomy, now: datetime
) -> Profile | None:
    """The subject's profile as of ``now``, or None without ``profiling`` consent or state. Not audited."""
    if not consenting(session, [subject_id]):
        return None
    inputs = feature_inputs(session, [subject_id], explained=True)
    cut_points = latest_cut_points(session)
    row, interests = pl.collect_all(
        [
            features(inputs, as_of=now, config=config, cut_points=cut_points),
            top_interests(inputs, as_of=now, config=config, taxonomy=taxonomy),
        ]
    )
    if row.height == 0:
        return None
    return _profile(row.row(0, named=True), interests.to_dicts(), as_of=now)


def _counts(row: Mapping[str, Any], name: str) -> WindowCounts:
    days = {w: int(row[f"{name}_{w}d"]) for w in WINDOWS}
    return WindowCounts(days[7], days[30], days[90], int(row[f"{name}_lifetime"]))


def _profile(row: Mapping[str, Any], interests: list[dict[str, Any]], *, as_of: datetime) -> Profile:
    repeat = (
        None
        if row["repeat_frequency"] is None
        else RepeatPurchases(
            frequency=row["repeat_frequency"],
            recency=row["repeat_recency"],
            t=row["repeat_t"],
            monetary=row["repeat_monetary"],
        )
    )
    return Profile(
        as_of=as_of,
        days_since_last_event=row["days_since_last_event"],
        days_since_last_purchase=row["days_since_last_purchase"],
        events=_counts(row, "events"),
        active_days=_counts(row, "active_days"),
        purchases=_counts(row, "purchases"),
        revenue_90_days=row["revenue_90d"],
        revenue_lifetime=row["revenue_lifetime"],
        average_order_value_90_days=row["aov_90d"],
        average_order_value_lifetime=row["aov_lifetime"],
        channel_mix=tuple(ChannelShare(c, row[channel_column(c)]) for c in CHANNEL_ORDER),
        device_count=row["device_count"],
        identifier_count=row["identifier_count"],
        lifecycle_stage=LifecycleStage(row["lifecycle"]),
        value_tier=None if row["value_tier"] is None else ValueTier(row["value_tier"]),
        age_band=row["age_band"],
        region=row["region"],
        repeat_purchases=repeat,
        bot_like=bool(row["bot_like"]),
        interests=tuple(
            Interest(
                topic=item["topic"],
                name=item["name"],
                score=item["score"],
                raw=item["raw"],
                half_life_days=item["half_life_days"],
                last_seen=item["last_seen"],
                counts=tuple(EventCount(c["type"], c["events"]) for c in item["counts"] or ()),
            )
            for item in interests
        ),
    )
