from __future__ import annotations

from schema.profiles import types
from server.profiles import service


def _counts(counts: service.WindowCounts) -> types.WindowCounts:
    return types.WindowCounts(
        last_7_days=counts.last_7_days,
        last_30_days=counts.last_30_days,
        last_90_days=counts.last_90_days,
        lifetime=counts.lifetime,
    )


def _interest(interest: service.Interest) -> types.Interest:
    return types.Interest(
        topic=interest.topic,
        name=interest.name,
        score=interest.score,
        raw=interest.raw,
        half_life_days=interest.half_life_days,
        last_seen=interest.last_seen,
        counts=[types.InterestEventCount(type=c.type, events=c.events) for c in interest.counts],
    )


def to_profile(profile: service.Profile) -> types.Profile:
    repeat = profile.repeat_purchases
    return types.Profile(
        as_of=profile.as_of,
        recency=types.Recency(
            days_since_last_event=profile.days_since_last_event,
            days_since_last_purchase=profile.days_since_last_purchase,
        ),
        frequency=types.Frequency(
            events=_counts(profile.events),
            active_days=_counts(profile.active_days),
            purchases=_counts(profile.purchases),
        ),
        monetary=types.Monetary(
            revenue_90_days=profile.revenue_90_days,
            revenue_lifetime=profile.revenue_lifetime,
            average_order_value_90_days=profile.average_order_value_90_days,
            average_order_value_lifetime=profile.average_order_value_lifetime,
        ),
        channel_mix=[types.ChannelShare(channel=c.channel, share=c.share) for c in profile.channel_mix],
        device_count=profile.device_count,
        identifier_count=profile.identifier_count,
        lifecycle_stage=profile.lifecycle_stage,
        value_tier=profile.value_tier,
        age_band=profile.age_band,
        region=profile.region,
        repeat_purchases=None
        if repeat is None
        else types.RepeatPurchases(
            frequency=repeat.frequency, recency=repeat.recency, t=repeat.t, monetary=repeat.monetary
        ),
        bot_like=profile.bot_like,
        interests=[_interest(interest) for interest in profile.interests],
    )
