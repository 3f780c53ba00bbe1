"""A rule compiled to one Polars boolean expression over the rule frame (``server.segments.rule_frame``).

The batch over millions of subjects and the real-time pass over a few run this same expression,
so they agree by construction.

Logic is two-valued: every leaf is false where its value is null (a comparison on a missing
feature, an interest of a bot-like subject), so ``not`` of such a leaf is true, as
``server.segments.rules`` defines it, and ``and`` / ``or`` never see a null.

A rule that names what the catalogue does not hold, or compares a feature with a value of
another kind, cannot be compiled: ``RuleNotEvaluable`` carries a code (the saved rule was
validated, so this means the catalogue changed under it), never the name or the value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

import polars as pl

from server.profiles.features import FEATURE_SCHEMA
from server.segments.catalogue import FEATURES, FeatureKind, value_allowed
from server.segments.rule_frame import (
    WindowKey,
    bucket_column,
    event_count_column,
    interest_rank_column,
    interest_score_column,
    segment_column,
)
from server.segments.rules import (
    All,
    Any,
    Between,
    Compare,
    CompareOp,
    EventWindow,
    Exists,
    InSegment,
    InterestScore,
    Literal,
    Not,
    OneOf,
    RandomBucket,
    Rule,
)

__all__ = ["NotEvaluableCode", "RuleNotEvaluable", "compile_rule"]


class NotEvaluableCode(enum.StrEnum):
    UNKNOWN_FEATURE = "UNKNOWN_FEATURE"
    WRONG_VALUE_KIND = "WRONG_VALUE_KIND"


class RuleNotEvaluable(ValueError):
    def __init__(self, code: NotEvaluableCode) -> None:
        super().__init__(f"the rule cannot be evaluated: {code.value}")
        self.code = code


_COMPARE: Final[dict[CompareOp, Callable[[pl.Expr, pl.Expr], pl.Expr]]] = {
    CompareOp.EQ: pl.Expr.eq,
    CompareOp.NE: pl.Expr.ne,
    CompareOp.LT: pl.Expr.lt,
    CompareOp.LE: pl.Expr.le,
    CompareOp.GT: pl.Expr.gt,
    CompareOp.GE: pl.Expr.ge,
}
_NUMERIC: Final = frozenset({FeatureKind.INTEGER, FeatureKind.NUMBER})


def _feature(name: str, *values: Literal, numeric: bool = False) -> pl.Expr:
    feature = FEATURES.get(name)
    if feature is None:
        raise RuleNotEvaluable(NotEvaluableCode.UNKNOWN_FEATURE)
    if (numeric and feature.kind not in _NUMERIC) or not all(value_allowed(feature, value) for value in values):
        raise RuleNotEvaluable(NotEvaluableCode.WRONG_VALUE_KIND)
    return pl.col(name)


def _known(condition: pl.Expr) -> pl.Expr:
    """False where the condition is unknown (null)."""
    return condition.fill_null(value=False)


def compile_rule(rule: Rule, segment_column_of: Callable[[str], str] = segment_column) -> pl.Expr:
    """``segment_column_of``: the boolean column holding membership of the segment a rule names."""
    match rule:
        case All(parts):
            return pl.all_horizontal(compile_rule(part, segment_column_of) for part in parts)
        case Any(parts):
            return pl.any_horizontal(compile_rule(part, segment_column_of) for part in parts)
        case Not(part):
            return ~compile_rule(part, segment_column_of)
        case Compare(name, op, value):
            ordered = op not in (CompareOp.EQ, CompareOp.NE)
            return _known(_COMPARE[op](_feature(name, value, numeric=ordered), pl.lit(value)))
        case Between(name, low, high):
            return _known(_feature(name, low, high, numeric=True).is_between(low, high, closed="both"))
        case OneOf(name, values):
            column = _feature(name, *values)
            # As the column's type; a value it cannot hold (out of range) is null and matches no one.
            listed = pl.Series(values=list(values), dtype=FEATURE_SCHEMA[name], strict=False)
            return _known(column.is_in(listed.drop_nulls().implode()))
        case Exists(name):
            return _feature(name).is_not_null()
        case InterestScore(topic, minimum, top):
            held = pl.col(interest_score_column(topic)) >= minimum
            if top is not None:
                held = held & (pl.col(interest_rank_column(topic)) <= top)
            return _known(held)
        case EventWindow(event_type, window, at_least, at_most, channel):
            count = pl.col(event_count_column(WindowKey(event_type, channel, window)))
            low = 0 if at_least is None else at_least
            held = count >= low if at_most is None else count.is_between(low, at_most, closed="both")
            return _known(held)
        case InSegment(name):
            return _known(pl.col(segment_column_of(name)))
        case RandomBucket(salt, buckets, lower, upper):
            return pl.col(bucket_column(salt, buckets)).is_between(lower, upper - 1, closed="both")
    raise TypeError("not a rule node")
