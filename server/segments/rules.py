"""The rule AST of a segment: one closed world, the same for the text DSL, the GraphQL input,
the stored JSON, the batch compiler and the real-time evaluator.

Closed: every node is one of the frozen dataclasses below and nothing else; a rule is a tree of
them (``Rule``). Nodes compare by value, so ``parse(print(rule)) == rule`` is a plain equality.
The shape is checked here (a bucket range inside its bucket count, at least two parts to an
``and``); what a rule *names* (a feature, a topic, a segment) is checked against the catalogue
when it is saved (``server.segments.validation``).

Semantics (``docs/segments.md``): a rule is evaluated as of a moment, over a subject's features
(``server.profiles.features.FEATURE_SCHEMA``); a comparison on a null feature is false (so
``not (x > 3)`` holds when ``x`` is null; ``exists(x)`` asks for a value).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = [
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "All",
    "Any",
    "Between",
    "Compare",
    "CompareOp",
    "DateRange",
    "EventWindow",
    "Exists",
    "InSegment",
    "InterestScore",
    "LastDays",
    "Literal",
    "Not",
    "OneOf",
    "RandomBucket",
    "Rule",
    "RuleShapeError",
    "Window",
    "children",
    "depth",
    "segments_named",
    "walk",
]

Literal = bool | int | float | str
"""A value a feature is compared with: a number, a text (a band, a stage, a region) or a flag."""

MAX_DEPTH: Final = 32
MAX_IN_VALUES: Final = 256
MAX_WINDOW_DAYS: Final = 3660
MAX_BUCKETS: Final = 10_000


class RuleShapeError(ValueError):
    """A node built with values its kind cannot hold. The message names the node, never a value."""


class CompareOp(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True, slots=True)
class All:
    """``a and b and ...``: true when every part is."""

    parts: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise RuleShapeError("'and' joins at least two rules")


@dataclass(frozen=True, slots=True)
class Any:
    """``a or b or ...``: true when one part is."""

    parts: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise RuleShapeError("'or' joins at least two rules")


@dataclass(frozen=True, slots=True)
class Not:
    part: Rule


@dataclass(frozen=True, slots=True)
class Compare:
    """``feature op value``, e.g. ``purchases_90d >= 2`` or ``lifecycle = "active"``."""

    feature: str
    op: CompareOp
    value: Literal


@dataclass(frozen=True, slots=True)
class Between:
    """``feature between low and high``, both ends included."""

    feature: str
    low: int | float
    high: int | float

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise RuleShapeError("'between' needs its low end at most its high end")


@dataclass(frozen=True, slots=True)
class OneOf:
    """``feature in ("a", "b")``."""

    feature: str
    values: tuple[Literal, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.values) <= MAX_IN_VALUES:
            raise RuleShapeError(f"'in' lists 1 to {MAX_IN_VALUES} values")


@dataclass(frozen=True, slots=True)
class Exists:
    """``exists(feature)``: the feature has a value (a purchase for ``days_since_last_purchase``)."""

    feature: str


@dataclass(frozen=True, slots=True)
class InterestScore:
    """``interest("sports/running") >= 0.6``, or with ``top=3``: also among the person's three
    strongest shown interests. The score is the 0..1 one a profile shows, decayed to the moment
    of evaluation; a parent topic counts its descendants."""

    topic: str
    minimum: float
    top: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.minimum <= 1.0:
            raise RuleShapeError("an interest score is compared with a value from 0 to 1")
        if self.top is not None and not 1 <= self.top <= 100:
            raise RuleShapeError("'top' is from 1 to 100")


@dataclass(frozen=True, slots=True)
class LastDays:
    """The last ``days`` UTC days, the day of evaluation included (as the profile windows)."""

    days: int

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_WINDOW_DAYS:
            raise RuleShapeError(f"a window is 1 to {MAX_WINDOW_DAYS} days")


@dataclass(frozen=True, slots=True)
class DateRange:
    """From ``start`` to ``end``, UTC days, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise RuleShapeError("a date range starts on or before its end")


Window = LastDays | DateRange


@dataclass(frozen=True, slots=True)
class EventWindow:
    """``events("purchase", channel="web") >= 2 within 90 days``: how many events of a type (on
    one channel, when given) fell in the window, at least ``at_least`` and at most ``at_most``.
    The count comes from the daily rollups, so ``type`` and ``channel`` are the filters it has."""

    event_type: str
    window: Window
    at_least: int | None = None
    at_most: int | None = None
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.at_least is None and self.at_most is None:
            raise RuleShapeError("an event window says at least or at most how many")
        for bound in (self.at_least, self.at_most):
            if bound is not None and bound < 0:
                raise RuleShapeError("an event count bound is not negative")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise RuleShapeError("an event window's 'at least' is at most its 'at most'")


@dataclass(frozen=True, slots=True)
class InSegment:
    """``in_segment("churned")``: a member of another segment (segments form a DAG)."""

    segment: str


@dataclass(frozen=True, slots=True)
class RandomBucket:
    """``bucket("holdout-2027", 100) < 10``: the subject's stable bucket, 0 to ``buckets - 1``,
    drawn from its id under ``salt``, lies in ``lower <= b < upper``. The same salt gives the
    same buckets in every segment, so a holdout is the same people everywhere it is used."""

    salt: str
    buckets: int
    lower: int
    upper: int

    def __post_init__(self) -> None:
        if not 2 <= self.buckets <= MAX_BUCKETS:
            raise RuleShapeError(f"a bucket count is 2 to {MAX_BUCKETS}")
        if not 0 <= self.lower < self.upper <= self.buckets:
            raise RuleShapeError("a bucket range lies within 0 and the bucket count, and is not empty")
        if not 1 <= len(self.salt) <= 64:
            raise RuleShapeError("a bucket salt is 1 to 64 characters")


Rule = All | Any | Not | Compare | Between | OneOf | Exists | InterestScore | EventWindow | InSegment | RandomBucket


def children(rule: Rule) -> tuple[Rule, ...]:
    if isinstance(rule, All | Any):
        return rule.parts
    if isinstance(rule, Not):
        return (rule.part,)
    return ()


def depth(rule: Rule) -> int:
    """How deep the tree is: a leaf is 1."""
    return 1 + max((depth(child) for child in children(rule)), default=0)


def walk(rule: Rule) -> list[Rule]:
    """Every node, parents before children."""
    found: list[Rule] = [rule]
    for child in children(rule):
        found.extend(walk(child))
    return found


def segments_named(rule: Rule) -> frozenset[str]:
    """The segments ``rule`` depends on directly (its edges in the segment DAG)."""
    return frozenset(node.segment for node in walk(rule) if isinstance(node, InSegment))
