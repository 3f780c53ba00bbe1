"""The profile as compliance and admin read it: features, interests with explanations, ``asOf``.

No field holds personal data: no identifier, no subject id, traits only as coarse bands.
Every formula is in docs/profiles.md.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.permissions import requires
from server.auth.principal import Role
from server.profiles.features import LifecycleStage
from server.profiles.tiers import ValueTier

PROFILE_READERS = requires(Role.COMPLIANCE, Role.ADMIN)

LifecycleStageType = strawberry.enum(
    LifecycleStage,
    name="LifecycleStage",
    description="NEW: first seen within the new-days window; else ACTIVE: an event within the active-days "
    "window; else AT_RISK: within the churn-days window; else CHURNED.",
)
ValueTierType = strawberry.enum(
    ValueTier, name="ValueTier", description="Lifetime revenue against the last build's cut points."
)


@strawberry.type(description="A count over the last 7, 30 and 90 UTC days (the as-of day included) and all days.")
class WindowCounts:
    last_7_days: int = strawberry.field(extensions=PROFILE_READERS)
    last_30_days: int = strawberry.field(extensions=PROFILE_READERS)
    last_90_days: int = strawberry.field(extensions=PROFILE_READERS)
    lifetime: int = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type(description="Days since the last event and purchase, in UTC calendar days.")
class Recency:
    days_since_last_event: int = strawberry.field(extensions=PROFILE_READERS)
    days_since_last_purchase: int | None = strawberry.field(
        extensions=PROFILE_READERS, description="Null when there was no purchase."
    )


@strawberry.type
class Frequency:
    events: WindowCounts = strawberry.field(extensions=PROFILE_READERS)
    active_days: WindowCounts = strawberry.field(
        extensions=PROFILE_READERS, description="Days with at least one event."
    )
    purchases: WindowCounts = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type(description="Revenue is the sum of purchase amounts; average order value is revenue / purchases.")
class Monetary:
    revenue_90_days: float = strawberry.field(extensions=PROFILE_READERS)
    revenue_lifetime: float = strawberry.field(extensions=PROFILE_READERS)
    average_order_value_90_days: float | None = strawberry.field(
        extensions=PROFILE_READERS, description="Null without a purchase in the window."
    )
    average_order_value_lifetime: float | None = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type(description="The share of all events (lifetime) sent through one channel.")
class ChannelShare:
    channel: str = strawberry.field(extensions=PROFILE_READERS)
    share: float = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type(
    description="Buy-till-you-die summary with the lifetimes package's conventions, in days: purchases of one "
    "UTC day count as one; frequency = purchase days after the first; recency = first to last purchase day; "
    "T = first purchase day to the as-of day; monetary = mean value of the repeat purchase days (0 when none)."
)
class RepeatPurchases:
    frequency: int = strawberry.field(extensions=PROFILE_READERS)
    recency: int = strawberry.field(extensions=PROFILE_READERS)
    t: int = strawberry.field(extensions=PROFILE_READERS, name="T")
    monetary: float = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type
class InterestEventCount:
    type: str = strawberry.field(extensions=PROFILE_READERS)
    events: int = strawberry.field(extensions=PROFILE_READERS)


@strawberry.type(description="An interest and its explanation; sensitive topics are never shown.")
class Interest:
    topic: str = strawberry.field(extensions=PROFILE_READERS, description="The taxonomy's topic id.")
    name: str = strawberry.field(extensions=PROFILE_READERS)
    score: float = strawberry.field(extensions=PROFILE_READERS, description="raw / (raw + saturation), in 0..1.")
    raw: float = strawberry.field(
        extensions=PROFILE_READERS, description="The decayed sum of event weights, as of the read."
    )
    half_life_days: float = strawberry.field(extensions=PROFILE_READERS)
    last_seen: datetime | None = strawberry.field(extensions=PROFILE_READERS)
    counts: list[InterestEventCount] = strawberry.field(
        extensions=PROFILE_READERS, description="Events behind the score, by event type."
    )


@strawberry.type(description="A person's profile, computed from the stored state when read; docs/profiles.md.")
class Profile:
    as_of: datetime = strawberry.field(extensions=PROFILE_READERS, description="The time the profile is as of.")
    recency: Recency = strawberry.field(extensions=PROFILE_READERS)
    frequency: Frequency = strawberry.field(extensions=PROFILE_READERS)
    monetary: Monetary = strawberry.field(extensions=PROFILE_READERS)
    channel_mix: list[ChannelShare] = strawberry.field(extensions=PROFILE_READERS)
    device_count: int = strawberry.field(extensions=PROFILE_READERS, description="Our own device ids.")
    identifier_count: int = strawberry.field(extensions=PROFILE_READERS, description="Our own identifiers.")
    lifecycle_stage: LifecycleStageType = strawberry.field(extensions=PROFILE_READERS)  # type: ignore[valid-type]
    value_tier: ValueTierType | None = strawberry.field(  # type: ignore[valid-type]
        extensions=PROFILE_READERS, description="Null until a build has taken the cut points."
    )
    age_band: str | None = strawberry.field(extensions=PROFILE_READERS)
    region: str | None = strawberry.field(extensions=PROFILE_READERS)
    repeat_purchases: RepeatPurchases | None = strawberry.field(
        extensions=PROFILE_READERS, description="Null when there was no purchase."
    )
    bot_like: bool = strawberry.field(
        extensions=PROFILE_READERS, description="A day with more events than the bot threshold: no interests."
    )
    interests: list[Interest] = strawberry.field(extensions=PROFILE_READERS, description="Strongest first.")
