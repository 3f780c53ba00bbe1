"""Every profile feature, computed from the stored state when it is read: the one definition.

LazyFrame in, LazyFrame out, for any number of subjects at once: a profile read passes one, the
batch build and segments pass millions, and all get the same numbers because they call these
functions. Nothing here reads the database (``server.profiles.inputs`` does) or collects.

Windows are UTC calendar days. "The last N days" as of a time ``as_of`` are the N days ending on
``as_of``'s UTC day, that day included, and the day counts whole (an event later that same day
is in it): ``as_of_day - N < day <= as_of_day``. Lifetime is every day up to ``as_of``'s day.
Days after it are never counted, so a daily-window feature read "as of" a past time from today's
state is exact to the day. The interest accumulators and their explanations keep no history: read
as of a past time they still include what came later (a negative elapsed time is taken as 0, so a
later event is not decayed backwards); exact past features come from the batch's state as of that
time, fed to these same functions.

Outputs: ``features`` gives one row per subject (``FEATURE_SCHEMA``); ``top_interests`` the top-k
interests per subject with their explanations (``INTEREST_SCHEMA``). ``docs/profiles.md`` states
every formula.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

import polars as pl

from server.frames.profiles import PURCHASE, TIMESTAMP
from server.frames.vocabulary import CHANNEL_ORDER
from server.profiles.config import LifecycleRules, ProfileConfig
from server.profiles.state import ProfileState, decayed_interests
from server.profiles.tiers import CutPoints, tier_expr
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "DEVICE_KIND",
    "FEATURE_SCHEMA",
    "INTEREST_SCHEMA",
    "WINDOWS",
    "FeatureInputs",
    "LifecycleStage",
    "as_of_day",
    "bot_like",
    "channel_column",
    "features",
    "lifecycle_expr",
    "repeat_purchases",
    "shown_interests",
    "top_interests",
]

WINDOWS: Final = (7, 30, 90)
"""The day windows of the frequency features; revenue and order value use 90 and lifetime."""
MONETARY_WINDOW: Final = 90
DEVICE_KIND: Final = "device_id"
EPOCH: Final = date(1970, 1, 1)
RANK_DECIMALS: Final = 12
"""Places to which interest scores (0..1) are compared when ranked: far below any difference a
person's events make, far above a float's rounding error (about 1e-16)."""


class LifecycleStage(enum.StrEnum):
    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    CHURNED = "churned"


def channel_column(channel: str) -> str:
    return f"channel_share_{channel}"


FEATURE_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "days_since_last_event": pl.Int32(),
        "days_since_last_purchase": pl.Int32(),  # null: no purchase up to as_of
        **{f"events_{w}d": pl.Int64() for w in WINDOWS},
        "events_lifetime": pl.Int64(),
        **{f"active_days_{w}d": pl.Int64() for w in WINDOWS},
        "active_days_lifetime": pl.Int64(),
        **{f"purchases_{w}d": pl.Int64() for w in WINDOWS},
        "purchases_lifetime": pl.Int64(),
        "revenue_90d": pl.Float64(),
        "revenue_lifetime": pl.Float64(),
        "aov_90d": pl.Float64(),  # null: no purchase in the window
        "aov_lifetime": pl.Float64(),
        **{channel_column(c): pl.Float64() for c in CHANNEL_ORDER},
        "device_count": pl.Int64(),
        "identifier_count": pl.Int64(),
        "lifecycle": pl.String(),
        "value_tier": pl.String(),  # null until a build has taken cut points
        "age_band": pl.String(),
        "region": pl.String(),
        "repeat_frequency": pl.Int64(),  # the four repeat_ columns are null for a subject that never purchased
        "repeat_recency": pl.Int32(),
        "repeat_t": pl.Int32(),
        "repeat_monetary": pl.Float64(),
        "bot_like": pl.Boolean(),
    }
)

INTEREST_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "rank": pl.Int64(),  # 1 = strongest
        "topic": pl.String(),
        "name": pl.String(),
        "score": pl.Float64(),  # raw / (raw + saturation), in 0..1
        "raw": pl.Float64(),  # the accumulator decayed to as_of
        "half_life_days": pl.Float64(),
        "last_seen": TIMESTAMP,
        "counts": pl.List(pl.Struct({"type": pl.String(), "events": pl.Int64()})),
    }
)


@dataclass(frozen=True, slots=True)
class FeatureInputs:
    """What features are computed from, for a set of subjects: the state frames
    (``server.frames.profiles``), declared traits and identities (``server.frames.subjects``), and,
    where interests are to be explained, the subjects' stored events (``STATE_EVENT_SCHEMA``)."""

    daily: pl.LazyFrame
    summary: pl.LazyFrame
    interests: pl.LazyFrame
    traits: pl.LazyFrame
    identities: pl.LazyFrame
    events: pl.LazyFrame | None = None

    @classmethod
    def of(
        cls,
        state: ProfileState,
        *,
        traits: pl.DataFrame,
        identities: pl.DataFrame,
        events: pl.DataFrame | None = None,
    ) -> FeatureInputs:
        return cls(
            daily=state.daily.lazy(),
            summary=state.summary.lazy(),
            interests=state.interests.lazy(),
            traits=traits.lazy(),
            identities=identities.lazy(),
            events=None if events is None else events.lazy(),
        )


def as_of_day(as_of: datetime) -> int:
    """``as_of``'s UTC calendar day, as the daily rollups number days (since 1970-01-01)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a time zone")
    return (as_of.astimezone(UTC).date() - EPOCH).days


def _days_up_to(daily: pl.LazyFrame, day: int) -> pl.LazyFrame:
    """The rollups of days up to ``day``, each with ``ago``: 0 on that day, 1 the day before."""
    return daily.filter(pl.col("day") <= day).with_columns(
        ago=(pl.lit(day, dtype=pl.Int32) - pl.col("day")).cast(pl.Int32),
        is_purchase=pl.col("type") == PURCHASE,
    )


def bot_like(daily: pl.LazyFrame, *, as_of: datetime, events_per_day: int) -> pl.LazyFrame:
    """(subject_id, bot_like): whether any day up to ``as_of`` had more than ``events_per_day`` events."""
    return (
        _days_up_to(daily, as_of_day(as_of))
        .group_by("subject_id", "day")
        .agg(pl.col("events").sum())
        .group_by("subject_id")
        .agg(bot_like=(pl.col("events") > events_per_day).any())
    )


def repeat_purchases(daily: pl.LazyFrame, *, as_of: datetime) -> pl.LazyFrame:
    """The ``lifetimes`` summary (``summary_data_from_transaction_data``, ``freq='D'``), in days.

    Purchases of one calendar day are one purchase, their amounts summed. ``frequency``: purchase
    days after the first; ``recency``: days from the first purchase day to the last; ``T``: days
    from the first purchase day to ``as_of``'s day; ``monetary``: the mean value of the repeat
    purchase days (the first excluded), 0 when there is none. Subjects that never purchased up to
    ``as_of`` are absent.
    """
    day = as_of_day(as_of)
    days = (
        _days_up_to(daily, day).filter(pl.col("is_purchase")).group_by("subject_id", "day").agg(pl.col("amount").sum())
    )
    first = pl.col("day").min()
    return days.group_by("subject_id").agg(
        repeat_frequency=(pl.len() - 1).cast(pl.Int64),
        repeat_recency=(pl.col("day").max() - first).cast(pl.Int32),
        repeat_t=(pl.lit(day, dtype=pl.Int32) - first).cast(pl.Int32),
        repeat_monetary=pl.col("amount").filter(pl.col("day") > first).mean().fill_null(0.0).cast(pl.Float64),
    )


def _activity(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Recency, frequency, monetary and channel counts per subject from ``_days_up_to`` rows."""
    events, purchase, ago = pl.col("events"), pl.col("is_purchase"), pl.col("ago")
    return rows.group_by("subject_id").agg(
        days_since_last_event=ago.min(),
        days_since_last_purchase=ago.filter(purchase).min(),
        days_since_first_event=ago.max(),
        **{f"events_{w}d": events.filter(ago < w).sum() for w in WINDOWS},
        events_lifetime=events.sum(),
        **{f"active_days_{w}d": pl.col("day").filter(ago < w).n_unique().cast(pl.Int64) for w in WINDOWS},
        active_days_lifetime=pl.col("day").n_unique().cast(pl.Int64),
        **{f"purchases_{w}d": events.filter(purchase & (ago < w)).sum() for w in WINDOWS},
        purchases_lifetime=events.filter(purchase).sum(),
        revenue_90d=pl.col("amount").filter(purchase & (ago < MONETARY_WINDOW)).sum(),
        revenue_lifetime=pl.col("amount").filter(purchase).sum(),
        **{f"_events_{c}": events.filter(pl.col("channel") == c).sum() for c in CHANNEL_ORDER},
    )


def lifecycle_expr(rules: LifecycleRules) -> pl.Expr:
    """``new`` if first seen within ``new_days``, else ``active`` if an event within ``active_days``,
    else ``at_risk`` within ``churn_days``, else ``churned`` ("within N days": the last N days)."""
    since_last = pl.col("days_since_last_event")
    return (
        pl.when(pl.col("days_since_first_event") < rules.new_days)
        .then(pl.lit(LifecycleStage.NEW.value))
        .when(since_last < rules.active_days)
        .then(pl.lit(LifecycleStage.ACTIVE.value))
        .when(since_last < rules.churn_days)
        .then(pl.lit(LifecycleStage.AT_RISK.value))
        .otherwise(pl.lit(LifecycleStage.CHURNED.value))
    )


def _identities(identities: pl.LazyFrame) -> pl.LazyFrame:
    """Our own links only: a partner's identifiers are its own and say nothing of our devices."""
    return (
        identities.filter(pl.col("partner_id").is_null())
        .group_by("subject_id")
        .agg(
            device_count=(pl.col("kind") == DEVICE_KIND).sum().cast(pl.Int64),
            identifier_count=pl.len().cast(pl.Int64),
        )
    )


def _average(revenue: str, purchases: str) -> pl.Expr:
    return pl.when(pl.col(purchases) > 0).then(pl.col(revenue) / pl.col(purchases))


def features(
    inputs: FeatureInputs,
    *,
    as_of: datetime,
    config: ProfileConfig,
    cut_points: CutPoints | None,
) -> pl.LazyFrame:
    """One row per subject with state and an event up to ``as_of``'s day (``FEATURE_SCHEMA``).

    ``cut_points``: the value-tier cut points of the last build (``tiers.latest_cut_points``).
    """
    rows = _days_up_to(inputs.daily, as_of_day(as_of))
    counted = inputs.summary.select("subject_id").join(_activity(rows), on="subject_id", how="inner")
    bought = pl.when(pl.col("purchases_lifetime") > 0).then(pl.col("revenue_lifetime"))
    flags = bot_like(inputs.daily, as_of=as_of, events_per_day=config.bot_events_per_day)
    return (
        counted.join(_identities(inputs.identities), on="subject_id", how="left")
        .join(inputs.traits.select("subject_id", "age_band", "region"), on="subject_id", how="left")
        .join(repeat_purchases(inputs.daily, as_of=as_of), on="subject_id", how="left")
        .join(flags, on="subject_id", how="left")
        .with_columns(
            pl.col("device_count", "identifier_count").fill_null(0),
            aov_90d=_average("revenue_90d", "purchases_90d"),
            aov_lifetime=_average("revenue_lifetime", "purchases_lifetime"),
            lifecycle=lifecycle_expr(config.lifecycle),
            value_tier=tier_expr(bought, cut_points),
            **{channel_column(c): pl.col(f"_events_{c}") / pl.col("events_lifetime") for c in CHANNEL_ORDER},
        )
        .select(pl.col(name).cast(dtype) for name, dtype in FEATURE_SCHEMA.items())
    )


def explanations(events: pl.LazyFrame, *, as_of: datetime, config: ProfileConfig, taxonomy: Taxonomy) -> pl.LazyFrame:
    """(subject_id, topic, last_seen, counts by type) from the events up to ``as_of``, each counted
    for the topics it names and their ancestors (once per topic), as the scores are summed; a
    sensitive topic an event names counts for nothing, as in the scores."""
    moment = pl.lit(as_of.astimezone(UTC), dtype=TIMESTAMP)
    return (
        events.filter(pl.col("topics").is_not_null() & (pl.col("occurred_at") <= moment))
        .with_row_index("_event")
        .select("_event", "subject_id", "type", "occurred_at", pl.col("topics").str.split(";").alias("named"))
        .explode("named")
        .filter(~pl.col("named").is_in(sorted(taxonomy.sensitive_ids)))
        .join(config.interests.lineage.lazy(), left_on="named", right_on="topic", how="inner")
        .unique(subset=["_event", "counted_as"])
        .group_by("subject_id", pl.col("counted_as").alias("topic"), "type")
        .agg(events=pl.len().cast(pl.Int64), last_seen=pl.col("occurred_at").max())
        .group_by("subject_id", "topic")
        .agg(last_seen=pl.col("last_seen").max(), counts=pl.struct("type", "events").sort_by("type"))
    )


def shown_interests(
    inputs: FeatureInputs,
    *,
    as_of: datetime,
    config: ProfileConfig,
    taxonomy: Taxonomy,
) -> pl.LazyFrame:
    """(subject_id, topic, name, raw, score, half_life_days, rank) of every interest a profile may
    show, all of them ranked (1 = strongest); ``top_interests`` keeps the first ``config.top_k``
    and segments compare scores and ranks (``server.segments.rule_frame``), so both read the same.

    Each accumulator decays to ``as_of`` and a parent topic sums its own and its descendants'
    (``decayed_interests``: ``raw``), scoring ``raw / (raw + saturation)``. Sensitive topics (GDPR
    Art. 9: ``taxonomy.is_sensitive``) are never shown and never counted into a parent's score.
    A bot-like subject shows none, nor does a subject without an event up to ``as_of``'s day (it
    has no profile then). Ties rank by topic id, so the order is stable: scores are compared to
    ``RANK_DECIMALS`` places, because two topics scored by the same events (a topic and its parent,
    say) are equal in arithmetic but may differ in the last bits of a float, by a sign that changes
    with ``as_of``; compared unrounded, their order flipped from one read to the next.
    """
    shown = taxonomy.frame.lazy().filter(~pl.col("sensitive")).select(pl.col("id").alias("topic"), "name")
    # Subjects with an event up to as_of (as ``features`` has them), bot-like ones left out.
    people = bot_like(inputs.daily, as_of=as_of, events_per_day=config.bot_events_per_day).filter(~pl.col("bot_like"))
    saturation = config.interests.saturation
    return (
        decayed_interests(inputs.interests.join(shown, on="topic", how="semi"), config.interests, as_of)
        .join(shown, on="topic", how="inner")
        .join(people, on="subject_id", how="semi")
        .join(config.interests.half_lives().lazy(), on="topic", how="inner")
        .with_columns(score=pl.col("raw") / (pl.col("raw") + saturation))
        .sort(["subject_id", pl.col("score").round(RANK_DECIMALS), "topic"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("subject_id"))
    )


def top_interests(
    inputs: FeatureInputs,
    *,
    as_of: datetime,
    config: ProfileConfig,
    taxonomy: Taxonomy,
) -> pl.LazyFrame:
    """The ``config.top_k`` strongest interests per subject, with their explanations (``INTEREST_SCHEMA``).

    Scores and ranks as ``shown_interests`` gives them. Explanations come from ``inputs.events``
    when given (null otherwise).
    """
    ranked = shown_interests(inputs, as_of=as_of, config=config, taxonomy=taxonomy).filter(
        pl.col("rank") <= config.top_k
    )
    if inputs.events is not None:
        ranked = ranked.join(
            explanations(inputs.events, as_of=as_of, config=config, taxonomy=taxonomy),
            on=["subject_id", "topic"],
            how="left",
        )
    else:
        ranked = ranked.with_columns(last_seen=pl.lit(None, dtype=TIMESTAMP), counts=pl.lit(None))
    return ranked.select(pl.col(name).cast(dtype) for name, dtype in INTEREST_SCHEMA.items()).sort("subject_id", "rank")
