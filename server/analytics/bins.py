"""The fixed bins of every numeric feature's histogram, chosen by the server and never by the data.

Why fixed: an edge drawn from the data (a quantile, the minimum, the maximum, equal-width bins
between the extremes) is itself a person's value. "The top bin ends at 4,812.50" tells the
analyst that someone spent exactly that, and asking again after one more person joined tells who.
Edges that depend only on the feature's name carry no information about anyone; what a histogram
then reveals is counts, which ``release`` floors at k and noises like every other count.

The scales are 1-2-5 steps for counts and money, calendar steps (a day, a week, a month, a
quarter, a year) for day counts, and tenths for shares. A value below a scale's first edge (a
negative revenue after refunds) counts in the first bin; the last bin is open (``[1000, inf)``)
except for shares, which end at 1. A bin's key names its interval, ``[low, high)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from server.segments.catalogue import FEATURES, FeatureKind

__all__ = ["NUMERIC_BINS", "Bins", "bin_expr"]


@dataclass(frozen=True, slots=True)
class Bins:
    """Edges ``e0 < e1 < ... < en``: bins ``[e0, e1), ..., [en, ceiling]`` (``ceiling`` None: open)."""

    scale: str
    edges: tuple[float, ...]
    ceiling: float | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        uppers = [*(_number(edge) for edge in self.edges[1:]), "inf" if self.ceiling is None else _number(self.ceiling)]
        last = len(self.edges) - 1
        return tuple(
            f"[{_number(low)}, {high}{']' if i == last and self.ceiling is not None else ')'}"
            for i, (low, high) in enumerate(zip(self.edges, uppers, strict=True))
        )

    def span(self, index: int) -> tuple[float, float | None]:
        """Bin ``index``'s low and high ends (high None: the open last bin)."""
        high = self.edges[index + 1] if index + 1 < len(self.edges) else self.ceiling
        return self.edges[index], high


def _number(edge: float) -> str:
    return f"{edge:g}"


COUNTS: Final = Bins("counts", (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000))
DAYS: Final = Bins("days", (0, 1, 2, 7, 14, 30, 60, 90, 180, 365, 730))
MONEY: Final = Bins("money", (0, 1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000))
SHARES: Final = Bins("shares", tuple(i / 10 for i in range(10)), ceiling=1.0)

_DAY_FEATURES: Final = frozenset({"days_since_last_event", "days_since_last_purchase", "repeat_recency", "repeat_t"})


def _bins_of(name: str, kind: FeatureKind) -> Bins:
    if name in _DAY_FEATURES:
        return DAYS
    if name.startswith(("revenue_", "aov_")) or name == "repeat_monetary":
        return MONEY
    if name.startswith("channel_share_"):
        return SHARES
    if kind is FeatureKind.INTEGER:
        return COUNTS
    raise ValueError(f"numeric feature {name} has no bins: give it a scale in server/analytics/bins.py")


NUMERIC_BINS: Final[dict[str, Bins]] = {
    feature.name: _bins_of(feature.name, feature.kind)
    for feature in FEATURES.values()
    if feature.kind in (FeatureKind.INTEGER, FeatureKind.NUMBER)
}
"""Every numeric feature's bins; a numeric feature added to profiles without a scale fails at import."""


def bin_expr(column: str, bins: Bins) -> pl.Expr:
    """The label of the bin each value of ``column`` falls in (null stays null)."""
    value = pl.col(column).cast(pl.Float64)
    labels = bins.labels
    # Any: Polars types the first link of a when/then chain apart from the links after it.
    chain: Any = pl.when(value.is_null()).then(pl.lit(None, dtype=pl.String))
    for edge, label in zip(reversed(bins.edges[1:]), reversed(labels[1:]), strict=True):
        chain = chain.when(value >= edge).then(pl.lit(label))
    labelled: pl.Expr = chain.otherwise(pl.lit(labels[0]))
    return labelled
