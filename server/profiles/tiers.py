"""Value tiers: lifetime revenue against the cut points of the last successful build.

The cut points are population quantiles (``TierRules``) that only a build can take, since they
need every buyer; between builds a profile is tiered, in real time, against the last ones. Before
the first build there are none, and every tier is null rather than a guess.

Rules, for a subject's lifetime revenue ``r`` (null when it never purchased):

- ``high`` when ``r >= cut_points["high"]``;
- ``low`` when ``r < cut_points["low"]``, or when it never purchased;
- ``normal`` otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.storage.tables import ProfileBuildRow

__all__ = ["ValueTier", "latest_cut_points", "tier_expr"]


class ValueTier(enum.StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


def tier_expr(revenue: pl.Expr, cut_points: Mapping[str, float] | None) -> pl.Expr:
    """The tier of each ``revenue`` (null for a subject that never purchased: ``low``)."""
    if cut_points is None:
        return pl.lit(None, dtype=pl.String)
    return (
        pl.when(revenue.is_null())
        .then(pl.lit(ValueTier.LOW.value))
        .when(revenue >= float(cut_points["high"]))
        .then(pl.lit(ValueTier.HIGH.value))
        .when(revenue < float(cut_points["low"]))
        .then(pl.lit(ValueTier.LOW.value))
        .otherwise(pl.lit(ValueTier.NORMAL.value))
    )


def latest_cut_points(session: Session) -> Mapping[str, float] | None:
    """The cut points of the newest build that succeeded and recorded some; None before any."""
    stored: dict[str, Any] | None = session.scalar(
        select(ProfileBuildRow.cut_points)
        .where(ProfileBuildRow.status == "succeeded", ProfileBuildRow.cut_points.is_not(None))
        .order_by(ProfileBuildRow.finished_at.desc(), ProfileBuildRow.id.desc())
        .limit(1)
    )
    if not stored or "high" not in stored or "low" not in stored:
        return None
    return {"high": float(stored["high"]), "low": float(stored["low"])}
