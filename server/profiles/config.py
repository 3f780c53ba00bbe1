"""What the profile formulas are tuned by: interest weights and half-lives, lifecycle and tier rules.

All of it is configuration (``Settings``): changing a weight or a half-life and rebuilding
(``audience build``) gives new scores. The defaults are documented in ``docs/profiles.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import polars as pl

from server.settings import Settings, SettingsError, named_numbers
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["DEFAULT_WEIGHTS", "InterestConfig", "LifecycleRules", "ProfileConfig", "TierRules", "profile_config"]

DEFAULT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "page_view": 1.0,
        "click": 1.5,
        "search": 1.5,
        "add_to_cart": 3.0,
        "purchase": 5.0,
        "email_open": 0.5,
        "email_click": 1.5,
        "ad_impression": 0.2,
        "ad_click": 1.0,
        "signup": 2.0,
        "app_open": 0.5,
        "store_visit": 2.0,
    }
)
"""A purchase says more about an interest than a view; an impression, seen or not, says little."""


@dataclass(frozen=True, slots=True)
class InterestConfig:
    """``lineage``: (topic, counted_as, half_life_days), each topic counted as itself and every
    ancestor, so a parent aggregates its children under its own half-life."""

    weights: Mapping[str, float]
    lineage: pl.DataFrame
    saturation: float = 5.0
    topic_type: pl.Enum = field(default_factory=lambda: pl.Enum([]))
    """The taxonomy's topic ids as an Enum: the state is computed on it (grouping and joining a
    categorical is several times faster than strings) and stored as text."""
    """The raw interest that scores 0.5: score = raw / (raw + saturation). One purchase by default."""

    @classmethod
    def from_taxonomy(
        cls,
        taxonomy: Taxonomy,
        *,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        half_lives: Mapping[str, float] | None = None,
        saturation: float = 5.0,
    ) -> InterestConfig:
        """``half_lives``: overrides by topic id; a child without one inherits its top-level topic's."""
        overrides = dict(half_lives or {})
        rows: list[tuple[str, str, float]] = []
        for topic in taxonomy.frame["id"].to_list():
            for counted_as in (topic, *taxonomy.ancestors(topic)):
                top = counted_as.split("/", 1)[0]
                half_life = overrides.get(counted_as, overrides.get(top, float(taxonomy.half_life_days(counted_as))))
                rows.append((topic, counted_as, float(half_life)))
        lineage = pl.DataFrame(
            rows, schema={"topic": pl.String(), "counted_as": pl.String(), "half_life_days": pl.Float64()}, orient="row"
        )
        return cls(
            weights=MappingProxyType(dict(weights)),
            lineage=lineage,
            saturation=saturation,
            topic_type=pl.Enum(taxonomy.frame["id"].to_list()),
        )

    def half_lives(self) -> pl.DataFrame:
        """(topic, half_life_days) for every topic an accumulator can hold."""
        return self.lineage.select(pl.col("counted_as").alias("topic"), "half_life_days").unique("topic")

    def typed_half_lives(self) -> pl.DataFrame:
        """``half_lives`` with topics as ``topic_type``."""
        return self.half_lives().with_columns(pl.col("topic").cast(self.topic_type))

    def typed_strict_ancestors(self) -> pl.DataFrame:
        """(topic, counted_as): each topic's ancestors, itself excluded, as ``topic_type``."""
        return self.lineage.filter(pl.col("topic") != pl.col("counted_as")).select(
            pl.col("topic").cast(self.topic_type), pl.col("counted_as").cast(self.topic_type)
        )

    def weight_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"type": list(self.weights), "weight": list(self.weights.values())},
            schema={"type": pl.String(), "weight": pl.Float64()},
        )


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """``new``: first seen within ``new_days``; else ``active``: an event within ``active_days``;
    else ``at_risk``: an event within ``churn_days``; else ``churned``."""

    new_days: int = 14
    active_days: int = 30
    churn_days: int = 90


@dataclass(frozen=True, slots=True)
class TierRules:
    """Cut points are population quantiles of lifetime revenue among buyers, taken at each build:
    ``high`` at or above the ``high`` quantile, ``low`` below the ``low`` one (and non-buyers)."""

    high: float = 0.8
    low: float = 0.4


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    interests: InterestConfig
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    tiers: TierRules = field(default_factory=TierRules)
    top_k: int = 5
    bot_events_per_day: int = 2_000
    """A subject with more events than this on one day is flagged as bot-like: no interests."""


def profile_config(settings: Settings, taxonomy: Taxonomy) -> ProfileConfig:
    """Unknown event types and topics in the overrides are refused here, at start-up, by name."""
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(named_numbers(settings.interest_weights))
    half_lives = named_numbers(settings.interest_half_lives)
    unknown = sorted(topic for topic in half_lives if topic not in taxonomy)
    if unknown:
        raise SettingsError(f"invalid setting AUDIENCE_INTEREST_HALF_LIVES: unknown topic {unknown[0]!r}")
    if any(days <= 0 for days in half_lives.values()):
        raise SettingsError("invalid setting AUDIENCE_INTEREST_HALF_LIVES: a half-life must be above 0 days")
    return ProfileConfig(
        interests=InterestConfig.from_taxonomy(
            taxonomy, weights=weights, half_lives=half_lives, saturation=settings.interest_saturation
        ),
        lifecycle=LifecycleRules(
            new_days=settings.lifecycle_new_days,
            active_days=settings.lifecycle_active_days,
            churn_days=settings.lifecycle_churn_days,
        ),
        tiers=TierRules(high=settings.value_tier_high_quantile, low=settings.value_tier_low_quantile),
        top_k=settings.interest_top_k,
        bot_events_per_day=settings.bot_events_per_day,
    )
