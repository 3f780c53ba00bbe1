"""Quantiles of a numeric feature, read off its *released* histogram: never a person's value.

An exact quantile of a population is one of its members' values (the median of 11 people is the
sixth one's), and asking for it as people come and go walks through their values one by one. So a
quantile here is computed from the histogram as it was released (counts past the k floor, with
their noise, over the server's fixed bins), by linear interpolation inside the bin it falls in:
post-processing of an answer already given, which reveals nothing more than that answer and costs
nothing more (the histogram's question is the one asked and paid for). Two populations with the
same released histogram get the same quantiles, whatever their members' exact values.

Suppressed cells (a bin below k, an empty one, the people without a value) hide how many people
they hold, but not how many they hold together: the released total minus every shown cell. A
quantile is given when it falls in the same shown bin wherever those hidden people are (all below
it or all above it), interpolated at the middle of that range; otherwise it is null with the reason
``suppressed``. ``open_bin``: it falls in the last, open-ended bin, whose upper end is unknown by
design; ``empty``: nobody has a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from server.analytics.bins import Bins
from server.analytics.release import Answer

__all__ = ["NONE_CELL", "Quantile", "quantiles_of"]

NONE_CELL: Final = "(none)"
"""The cell of the people without a value for the feature."""
SUPPRESSED: Final = "suppressed"
OPEN_BIN: Final = "open_bin"
EMPTY: Final = "empty"


@dataclass(frozen=True, slots=True)
class Quantile:
    q: float
    value: float | None
    reason: str | None = None


def quantiles_of(histogram: Answer, bins: Bins, qs: Sequence[float]) -> list[Quantile]:
    """Each of ``qs`` (0..1) as interpolated in the released ``histogram`` over ``bins``."""
    total = histogram.total.value
    if total is None:
        return [Quantile(q, None, SUPPRESSED) for q in qs]
    counts = [histogram.cells[label].value or 0 for label in bins.labels]
    shown = sum(figure.value or 0 for figure in histogram.cells.values())
    hidden = max(0, total - shown)
    if sum(counts) <= 0:
        return [Quantile(q, None, EMPTY if hidden == 0 else SUPPRESSED) for q in qs]
    return [_quantile(q, counts, hidden, bins) for q in qs]


def _quantile(q: float, counts: list[int], hidden: int, bins: Bins) -> Quantile:
    """The quantile's rank among the shown people is between ``q * people - hidden`` (every hidden
    person below it) and ``q * people`` (every one above); both must fall in one shown bin."""
    people = sum(counts) + hidden
    lowest, highest = q * people - hidden, q * people
    below = 0
    for index, count in enumerate(counts):
        if count > 0 and below <= lowest and highest <= below + count:
            return _within(q, index, ((lowest + highest) / 2 - below) / count, bins)
        below += count
    return Quantile(q, None, SUPPRESSED)


def _within(q: float, index: int, fraction: float, bins: Bins) -> Quantile:
    low, high = bins.span(index)
    if high is None:
        return Quantile(q, None, OPEN_BIN)
    return Quantile(q, round(low + min(1.0, max(0.0, fraction)) * (high - low), 6))
