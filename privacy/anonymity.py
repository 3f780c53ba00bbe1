"""The anonymity floor of every count we show: below k, a count is suppressed, never rounded.

Threat model: a count of a few people is a fact about those people ("3 members live in region
X"); a breakdown whose total is shown lets one suppressed cell be recovered as the total minus
the others, and two suppressed cells their sum. So, for a breakdown:

1. primary: every cell below ``k`` (zero included: "nobody here" is a fact too) is suppressed;
2. secondary: while the suppressed cells together hold fewer than ``k`` people (so that
   total - shown cells would give a small number), the smallest shown cell is suppressed too.
   "Fewer than k" includes none at all: if suppressed cells that hold nobody stopped the
   secondary suppression, *which* cells are shown would itself tell "the hidden cells are empty"
   from "someone is in them" (an overlap of a segment and the same segment minus one person would
   show its intersection exactly when that person is not in the first; a histogram whose one shown
   bin holds everyone would say so of each member). Only a breakdown with nothing hidden and
   nobody outside its cells has nothing to protect;
3. a total below ``k`` suppresses the total and every cell.

``k`` comes from the settings (``AUDIENCE_ANONYMITY_THRESHOLD``: 50 by default, never below 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["BELOW_K", "COMPLEMENT", "Breakdown", "SuppressedCount", "breakdown", "count"]

BELOW_K: Final = "below_k"
COMPLEMENT: Final = "complement"
"""Suppressed so that another suppressed cell cannot be recovered from the total."""


@dataclass(frozen=True, slots=True)
class SuppressedCount:
    """``value`` is None exactly when ``reason`` says why it is not shown."""

    value: int | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Breakdown:
    total: SuppressedCount
    cells: dict[str, SuppressedCount]


def count(value: int, k: int) -> SuppressedCount:
    return SuppressedCount(value) if value >= k else SuppressedCount(None, BELOW_K)


def breakdown(cells: Mapping[str, int], total: int, k: int) -> Breakdown:
    """Cells of a total (cells may not cover it: people without a value are in no cell)."""
    if total < k:
        return Breakdown(SuppressedCount(None, BELOW_K), {name: SuppressedCount(None, BELOW_K) for name in cells})
    hidden = {name for name, value in cells.items() if value < k}
    # What the total minus the shown cells gives away: the hidden cells and the people in none.
    unshown = total - sum(value for name, value in cells.items() if name not in hidden)
    for name, value in sorted(cells.items(), key=lambda item: (item[1], item[0])):
        if unshown >= k or (unshown == 0 and not hidden):
            break
        if name not in hidden:
            hidden.add(name)
            unshown += value
    shown = {
        name: SuppressedCount(None, BELOW_K if value < k else COMPLEMENT) if name in hidden else SuppressedCount(value)
        for name, value in cells.items()
    }
    return Breakdown(SuppressedCount(total), shown)
