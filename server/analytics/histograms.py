"""The true answers of the distribution questions, from a feature frame (``features_now``): counts
per cell, before ``release`` floors, noises and records them.

Every cell set is fixed before the data is looked at, because a cell's *name* is released even
when its count is not: bins are the server's (``bins``), bands their closed vocabularies, and
``(none)`` holds the people without a value. The one open vocabulary, ``region``, would otherwise
name a region where one person lives; a value is named only as ``release.may_name`` allows (at
least k people in the question's population, and for noisy answers a noisy count past the noisy
threshold), and the others are counted together as ``other``.

Sensitivity (how many released values one person moves): a histogram or a mix puts each person in
exactly one cell, so 2 with the total; an interest reach may put a person in every topic's cell,
so the number of topics plus 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import polars as pl

from server.analytics.bins import NUMERIC_BINS, bin_expr
from server.analytics.quantiles import NONE_CELL
from server.analytics.release import Truth
from server.segments.catalogue import FEATURES, FeatureKind
from server.segments.rule_frame import interest_score_column

__all__ = ["OTHER_CELL", "cell_names", "cells_of_counts", "feature_histogram", "interest_reach", "profile_mix"]

OTHER_CELL: Final = "other"
"""An open vocabulary's values with fewer than k people, counted together."""
MIX_SEPARATOR: Final = "|"
_FLAG_VALUES: Final = ("false", "true")
_BREAKDOWN_SENSITIVITY: Final = 2

Naming = Callable[[str, int], bool]
"""Whether an open vocabulary's value held by so many people may be named (``release.may_name``)."""


def feature_histogram(frame: pl.DataFrame, feature: str, *, named: Naming) -> Truth:
    """People per value (bands, flags) or per fixed bin (numbers) of ``feature``, and ``(none)``."""
    labels = _labelled(frame, feature, named=named)
    counts = _counted(labels.to_frame("cell"), ["cell"])
    names = [*_fixed_names(feature, labels), NONE_CELL]
    return Truth(total=frame.height, cells=_filled(names, counts), sensitivity=_BREAKDOWN_SENSITIVITY)


def profile_mix(frame: pl.DataFrame, dimension: str, by: str, *, named: Naming) -> Truth:
    """People per (``dimension`` value, ``by`` value): cells ``"active|FR-IDF"``, every pair of
    both vocabularies (``(none)`` included), so a cell's name says nothing about anyone."""
    rows = _labelled(frame, dimension, named=named).to_frame("row")
    columns = _labelled(frame, by, named=named)
    pairs = rows.with_columns(column=columns).select(
        pl.concat_str("row", pl.lit(MIX_SEPARATOR), "column").alias("cell")
    )
    names = [
        f"{row}{MIX_SEPARATOR}{column}"
        for row in (*_fixed_names(dimension, rows["row"]), NONE_CELL)
        for column in (*_fixed_names(by, columns), NONE_CELL)
    ]
    return Truth(
        total=frame.height, cells=_filled(names, _counted(pairs, ["cell"])), sensitivity=_BREAKDOWN_SENSITIVITY
    )


def interest_reach(frame: pl.DataFrame, topics: Sequence[str], min_score: float) -> Truth:
    """Per topic, the people whose score is at least ``min_score`` (a person may be in every cell)."""
    reached = frame.select(
        (pl.col(interest_score_column(topic)) >= min_score).sum().alias(topic) for topic in topics
    ).row(0, named=True)
    return Truth(
        total=frame.height,
        cells={topic: int(reached[topic] or 0) for topic in topics},
        sensitivity=len(topics) + 1,
        partition=False,
        complements=True,
    )


def cell_names(feature: str) -> tuple[str, ...] | None:
    """A feature's cells known without data (None for an open vocabulary such as ``region``)."""
    known = FEATURES[feature]
    if feature in NUMERIC_BINS:
        return NUMERIC_BINS[feature].labels
    if known.kind is FeatureKind.FLAG:
        return _FLAG_VALUES
    return known.values


def cells_of_counts(feature: str, counts: dict[str, int], total: int, *, named: Naming) -> dict[str, int]:
    """Counts by value (people without one left out, as a preview counts them) in ``feature``'s
    fixed cells: a band's every value, zeros included; an open vocabulary's values it may name and
    ``other``; and ``(none)`` for the rest of ``total``."""
    known = cell_names(feature)
    if known is None:
        common = sorted(value for value, count in counts.items() if named(value, count))
        cells = {value: counts[value] for value in common}
        cells[OTHER_CELL] = sum(count for value, count in counts.items() if value not in cells)
    else:
        cells = {value: int(counts.get(value, 0)) for value in known}
    cells[NONE_CELL] = total - sum(counts.values())
    return cells


def _labelled(frame: pl.DataFrame, feature: str, *, named: Naming) -> pl.Series:
    """Each person's cell for ``feature`` (``(none)`` without a value; an open vocabulary's rare
    values as ``other``)."""
    column = pl.col(feature)
    if feature in NUMERIC_BINS:
        label = bin_expr(feature, NUMERIC_BINS[feature])
    elif FEATURES[feature].kind is FeatureKind.FLAG:
        label = pl.when(column).then(pl.lit("true")).when(~column).then(pl.lit("false"))
    elif cell_names(feature) is None:
        counted = frame.get_column(feature).drop_nulls().value_counts(name="people")
        names = [value for value, people in counted.iter_rows() if named(value, people)]  # one row per value
        common = column.is_in(pl.Series(names, dtype=pl.String).implode())
        label = pl.when(column.is_null()).then(None).when(common).then(column).otherwise(pl.lit(OTHER_CELL))
    else:
        label = column
    return frame.select(label.cast(pl.String).fill_null(NONE_CELL).alias(feature)).to_series()


def _fixed_names(feature: str, labels: pl.Series) -> tuple[str, ...]:
    """The feature's cells: its fixed ones, or (open vocabulary) the common values seen and ``other``."""
    known = cell_names(feature)
    if known is not None:
        return known
    values = labels.unique()
    seen = values.filter(~values.is_in([NONE_CELL, OTHER_CELL])).sort()
    return (*seen.to_list(), OTHER_CELL)


def _counted(frame: pl.DataFrame, by: list[str]) -> dict[str, int]:
    counted = frame.group_by(by).len()
    return dict(zip(counted[by[0]].to_list(), counted["len"].to_list(), strict=True))


def _filled(names: Sequence[str], counts: dict[str, int]) -> dict[str, int]:
    return {name: int(counts.get(name, 0)) for name in names}
