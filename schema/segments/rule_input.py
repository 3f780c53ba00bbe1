"""A segment's rule as a GraphQL input: the same AST as the text DSL, one node per ``RuleInput``.

``RuleInput`` and ``ValueInput`` are ``@oneOf`` inputs: exactly one field is set, and GraphQL
refuses any other shape before a resolver runs. ``rule_from_input`` builds the AST and turns a
shape the AST refuses (``between`` with its ends swapped, an ``and`` of one rule, a window of 0
days) into a ``RuleInputError`` naming the input field (``rule.and.1.between``) and never the value.
A rule is held to the text form's length (``MAX_TEXT_LENGTH``, of its canonical text): only the
request body would bound it otherwise, and every evaluation pays for its size.
What the rule names (features, topics, segments) is checked afterwards by
``server.segments.validation``, as for text; ``input_field`` names a problem's node as a field.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date
from typing import Final, TypeVar

import strawberry

from server.segments.dsl import MAX_TEXT_LENGTH, render
from server.segments.paths import NodePath
from server.segments.rules import (
    MAX_DEPTH,
    All,
    Any,
    Between,
    Compare,
    CompareOp,
    DateRange,
    EventWindow,
    Exists,
    InSegment,
    InterestScore,
    LastDays,
    Literal,
    Not,
    OneOf,
    RandomBucket,
    Rule,
    RuleShapeError,
    Window,
    children,
)

__all__ = [
    "BetweenInput",
    "BucketInput",
    "CompareInput",
    "DateRangeInput",
    "EventsInput",
    "InInput",
    "InputCode",
    "InterestInput",
    "RuleInput",
    "RuleInputError",
    "ValueInput",
    "WindowInput",
    "input_field",
    "rule_from_input",
]

ROOT_FIELD: Final = "rule"

strawberry.enum(CompareOp, name="CompareOperator", description="=, !=, <, <=, >, >= as EQ, NE, LT, LE, GT, GE.")


class InputCode(enum.StrEnum):
    SHAPE = "SHAPE"
    TOO_DEEP = "TOO_DEEP"
    TOO_LONG = "TOO_LONG"


class RuleInputError(ValueError):
    """A ``RuleInput`` no rule can be built from: ``field`` (``rule.and.1.between``) and the node's
    ``path`` (``(1,)``) say where, the message says which rule was broken."""

    def __init__(self, code: InputCode, message: str, *, field: str, path: NodePath) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.path = path


@strawberry.input(one_of=True, description="A value a feature is compared with: set exactly one.")
class ValueInput:
    number: float | None = strawberry.UNSET
    integer: int | None = strawberry.UNSET
    text: str | None = strawberry.UNSET
    flag: bool | None = strawberry.UNSET


@strawberry.input(description="feature op value, e.g. purchases_90d GE 2.")
class CompareInput:
    feature: str
    op: CompareOp
    value: ValueInput


@strawberry.input(description="feature between low and high, both ends included; numbers only.")
class BetweenInput:
    feature: str
    low: ValueInput
    high: ValueInput


@strawberry.input(description="feature in (values): 1 to 256 values.")
class InInput:
    feature: str
    values: list[ValueInput]


@strawberry.input(
    description="A decayed interest score of at least minimum (0 to 1), optionally among the top interests."
)
class InterestInput:
    topic: str
    minimum: float
    top: int | None = strawberry.field(default=None, description="Also among the person's top interests (1 to 100).")


@strawberry.input(description="From one UTC day to another, both included.")
class DateRangeInput:
    start: date = strawberry.field(name="from")
    end: date = strawberry.field(name="to")


@strawberry.input(one_of=True, description="The last days (the day of evaluation included) or a date range.")
class WindowInput:
    last_days: int | None = strawberry.UNSET
    dates: DateRangeInput | None = strawberry.UNSET


@strawberry.input(description="How many events of a type (on one channel, when given) fell in the window.")
class EventsInput:
    type: str
    window: WindowInput
    at_least: int | None = None
    at_most: int | None = None
    channel: str | None = None


@strawberry.input(description="The subject's stable bucket under salt, 0 to buckets - 1, lies in lower <= b < upper.")
class BucketInput:
    salt: str
    buckets: int
    lower: int
    upper: int


@strawberry.input(one_of=True, description="One node of a segment's rule: set exactly one field. docs/segments.md.")
class RuleInput:
    all_of: list[RuleInput] | None = strawberry.field(name="and", default=strawberry.UNSET)
    any_of: list[RuleInput] | None = strawberry.field(name="or", default=strawberry.UNSET)
    negated: RuleInput | None = strawberry.field(name="not", default=strawberry.UNSET)
    compare: CompareInput | None = strawberry.UNSET
    between: BetweenInput | None = strawberry.UNSET
    one_of: InInput | None = strawberry.field(name="in", default=strawberry.UNSET)
    exists: str | None = strawberry.field(default=strawberry.UNSET, description="A feature that has a value.")
    interest: InterestInput | None = strawberry.UNSET
    events: EventsInput | None = strawberry.UNSET
    in_segment: str | None = strawberry.field(default=strawberry.UNSET, description="A member of this segment.")
    bucket: BucketInput | None = strawberry.UNSET


def rule_from_input(value: RuleInput, *, field: str = ROOT_FIELD) -> Rule:
    """The AST ``value`` stands for; ``field`` is the argument's name, the start of error fields."""
    rule = _Reader().rule(value, field, ())
    if len(render(rule)) > MAX_TEXT_LENGTH:
        message = f"a rule is at most {MAX_TEXT_LENGTH} characters written as text"
        raise RuleInputError(InputCode.TOO_LONG, message, field=field, path=())
    return rule


def input_field(rule: Rule, path: NodePath, *, field: str = ROOT_FIELD) -> str:
    """The input field of the node at ``path`` in ``rule``, as the reader names it when it refuses a
    shape: ``rule.and.1.not.interest`` for ``(1, 0)``."""
    parts = [field]
    node = rule
    for index in path:
        parts.append(_NODE_FIELDS[type(node)])
        if isinstance(node, All | Any):
            parts.append(str(index))
        node = children(node)[index]
    parts.append(_NODE_FIELDS[type(node)])
    return ".".join(parts)


T = TypeVar("T")


def _is_set(value: object) -> bool:
    return value is not None and value is not strawberry.UNSET


def _chosen(value: object, names: dict[str, str], field: str, path: NodePath) -> str:
    """The one attribute of a oneOf input that is set (GraphQL checks it; a Python caller may not)."""
    chosen = [attribute for attribute in names if _is_set(getattr(value, attribute))]
    if len(chosen) != 1:
        raise RuleInputError(InputCode.SHAPE, f"set exactly one of {', '.join(names.values())}", field=field, path=path)
    return chosen[0]


_RULE_FIELDS: Final = {
    "all_of": "and",
    "any_of": "or",
    "negated": "not",
    "compare": "compare",
    "between": "between",
    "one_of": "in",
    "exists": "exists",
    "interest": "interest",
    "events": "events",
    "in_segment": "inSegment",
    "bucket": "bucket",
}
_NODE_FIELDS: Final[dict[type[Rule], str]] = {
    All: "and",
    Any: "or",
    Not: "not",
    Compare: "compare",
    Between: "between",
    OneOf: "in",
    Exists: "exists",
    InterestScore: "interest",
    EventWindow: "events",
    InSegment: "inSegment",
    RandomBucket: "bucket",
}
"""Each node's field in ``RuleInput`` (the values of ``_RULE_FIELDS``, by the node they build)."""
_VALUE_FIELDS: Final = {"number": "number", "integer": "integer", "text": "text", "flag": "flag"}
_WINDOW_FIELDS: Final = {"last_days": "lastDays", "dates": "dates"}


class _Reader:
    """Depth-first, refusing past ``MAX_DEPTH`` before going deeper: the recursion is bounded."""

    def rule(self, value: RuleInput, field: str, path: NodePath) -> Rule:
        if len(path) >= MAX_DEPTH:
            raise RuleInputError(
                InputCode.TOO_DEEP, f"a rule nests at most {MAX_DEPTH} levels deep", field=field, path=path
            )
        here = f"{field}.{_RULE_FIELDS[_chosen(value, _RULE_FIELDS, field, path)]}"
        if isinstance(value.all_of, list) or isinstance(value.any_of, list):
            parts = value.all_of if isinstance(value.all_of, list) else value.any_of or []
            built = tuple(self.rule(part, f"{here}.{index}", (*path, index)) for index, part in enumerate(parts))
            group = All if isinstance(value.all_of, list) else Any
            return _shaped(lambda: group(built), here, path)
        if isinstance(value.negated, RuleInput):
            return Not(self.rule(value.negated, here, (*path, 0)))
        return self.leaf(value, here, path)

    def leaf(self, value: RuleInput, here: str, path: NodePath) -> Rule:
        if isinstance(value.compare, CompareInput):
            compare = value.compare
            literal = self.literal(compare.value, f"{here}.value", path)
            return Compare(compare.feature, CompareOp(compare.op), literal)
        if isinstance(value.between, BetweenInput):
            between = value.between
            low = self.number(between.low, f"{here}.low", path)
            high = self.number(between.high, f"{here}.high", path)
            return _shaped(lambda: Between(between.feature, low, high), here, path)
        if isinstance(value.one_of, InInput):
            one_of = value.one_of
            values = tuple(
                self.literal(item, f"{here}.values.{index}", path) for index, item in enumerate(one_of.values)
            )
            return _shaped(lambda: OneOf(one_of.feature, values), here, path)
        if isinstance(value.exists, str):
            return Exists(value.exists)
        if isinstance(value.interest, InterestInput):
            interest = value.interest
            return _shaped(lambda: InterestScore(interest.topic, float(interest.minimum), interest.top), here, path)
        if isinstance(value.events, EventsInput):
            events = value.events
            window = self.window(events.window, f"{here}.window", path)
            return _shaped(
                lambda: EventWindow(events.type, window, events.at_least, events.at_most, events.channel), here, path
            )
        if isinstance(value.in_segment, str):
            return InSegment(value.in_segment)
        bucket = value.bucket
        if not isinstance(bucket, BucketInput):
            raise RuleInputError(InputCode.SHAPE, "a rule input of an unknown kind", field=here, path=path)
        return _shaped(lambda: RandomBucket(bucket.salt, bucket.buckets, bucket.lower, bucket.upper), here, path)

    def literal(self, value: ValueInput, field: str, path: NodePath) -> Literal:
        kind = _chosen(value, _VALUE_FIELDS, field, path)
        read: Literal = getattr(value, kind)
        return float(read) if kind == "number" else read

    def number(self, value: ValueInput, field: str, path: NodePath) -> int | float:
        read = self.literal(value, field, path)
        if isinstance(read, bool) or not isinstance(read, int | float):
            raise RuleInputError(InputCode.SHAPE, "'between' takes a number or an integer", field=field, path=path)
        return read

    def window(self, value: WindowInput, field: str, path: NodePath) -> Window:
        _chosen(value, _WINDOW_FIELDS, field, path)
        if isinstance(value.last_days, int):
            days = value.last_days
            return _shaped(lambda: LastDays(days), f"{field}.lastDays", path)
        dates = value.dates
        if not isinstance(dates, DateRangeInput):
            raise RuleInputError(InputCode.SHAPE, "a window of an unknown kind", field=field, path=path)
        return _shaped(lambda: DateRange(dates.start, dates.end), f"{field}.dates", path)


def _shaped(build: Callable[[], T], field: str, path: NodePath) -> T:
    try:
        return build()
    except RuleShapeError as error:
        raise RuleInputError(InputCode.SHAPE, str(error), field=field, path=path) from None
