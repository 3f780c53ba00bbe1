"""Value tiers: ``high``, ``normal`` or ``low`` by lifetime purchase revenue against population cut points.

A tier compares a subject with everyone else, so it needs a population pass: each batch build
takes the quantiles ``TierRules.high`` and ``TierRules.low`` of lifetime revenue among buyers
(subjects with at least one purchase in their state, whatever its amount) and stores them with
its run. Every read between two builds applies the last succeeded build's cut points, to subjects
new since then too, through ``tier_expr``: one rule for the build, the profile reads and anyone else.

The rule, in order: no purchase -> ``low``; revenue at or above the high cut -> ``high``; below
the low cut -> ``low``; otherwise ``normal``. Before any build has cut points (or when it found no
buyer) every tier is null rather than a guess. Quantiles interpolate linearly between the two nearest buyers
(numpy's default), so a population of one buyer has both cuts at that buyer's revenue (``high``).
"""

from __future__ import annotations

import enum
from typing import Final

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.frames.profiles import PURCHASE
from server.profiles.build_runs import BuildStatus, CutPoints
from server.profiles.config import TierRules
from server.storage.arrow_reads import FrameReader
from server.storage.restrictions import unrestricted
from server.storage.tables import ProfileBuildRow

__all__ = ["CutPoints", "ValueTier", "buyer_revenue", "cut_points_of", "latest_cut_points", "tier_expr"]

REVENUE_SCHEMA: Final = pl.Schema({"subject_id": pl.Int64(), "revenue": pl.Float64()})


class ValueTier(enum.StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


def buyer_revenue(reader: FrameReader) -> pl.DataFrame:
    """(subject_id, revenue): lifetime purchase revenue of every unrestricted subject with a purchase
    in its state (a restricted subject's frozen state is kept, not used)."""
    return reader.frame(
        "SELECT subject_id, sum(amount) FROM profile_daily "
        f"WHERE type = ? AND {unrestricted('profile_daily.subject_id')} GROUP BY subject_id",
        REVENUE_SCHEMA,
        (PURCHASE,),
    )


def cut_points_of(revenue: pl.DataFrame, rules: TierRules) -> CutPoints:
    """The quantiles of ``revenue`` (one row per buyer) at ``rules.high`` and ``rules.low``."""
    buyers = revenue.height
    if buyers == 0:
        return CutPoints(high=None, low=None, buyers=0)
    cuts = revenue.select(
        high=pl.col("revenue").quantile(rules.high, interpolation="linear"),
        low=pl.col("revenue").quantile(rules.low, interpolation="linear"),
    ).row(0)
    return CutPoints(high=float(cuts[0]), low=float(cuts[1]), buyers=buyers)


def tier_expr(revenue: pl.Expr, cut_points: CutPoints | None) -> pl.Expr:
    """The tier of each row (a column named ``value_tier``) from its lifetime purchase revenue; a
    null revenue means no purchase."""
    low, normal, high = (pl.lit(tier.value) for tier in (ValueTier.LOW, ValueTier.NORMAL, ValueTier.HIGH))
    if cut_points is None or cut_points.high is None or cut_points.low is None:
        # No population to compare with yet: null for every row (a bare literal would be one row).
        return pl.when(revenue.is_null() & revenue.is_not_null()).then(normal).alias("value_tier")
    return (
        pl.when(revenue.is_null())
        .then(low)
        .when(revenue >= cut_points.high)
        .then(high)
        .when(revenue < cut_points.low)
        .then(low)
        .otherwise(normal)
        .alias("value_tier")
    )


def latest_cut_points(session: Session) -> CutPoints | None:
    """The cut points of the last build that succeeded; ``None`` before the first."""
    stored = session.scalar(
        select(ProfileBuildRow.cut_points)
        .where(ProfileBuildRow.status == BuildStatus.SUCCEEDED.value)
        .order_by(ProfileBuildRow.id.desc())
        .limit(1)
    )
    return None if stored is None else CutPoints.from_json(stored)
