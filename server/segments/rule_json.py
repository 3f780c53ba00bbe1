"""A rule as stored JSON (``segments.rule``): versioned, tagged, and read back only when well formed.

Stored rules outlive the code that wrote them, so the form is explicit and versioned:
``{"v": 1, "rule": node}``, each node an object tagged by ``"node"`` with exactly its own fields
(dates as ISO days, comparison operators as their symbols). ``from_json`` is the one reader: it
accepts nothing but that form and raises ``RuleJsonError`` for anything else, whatever it is
given (a wrong type, an unknown tag, a missing or extra field, a bool where a number belongs,
a tree deeper than ``MAX_DEPTH``), with a message naming the place in the tree, never a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any as AnyValue
from typing import Final

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
)

__all__ = ["VERSION", "RuleJsonError", "from_json", "to_json"]

VERSION: Final = 1


class RuleJsonError(ValueError):
    """A stored rule that is not a well-formed version-1 rule; the message says where, not what."""


def to_json(rule: Rule) -> dict[str, AnyValue]:
    return {"v": VERSION, "rule": _node(rule)}


def _window(window: Window) -> dict[str, AnyValue]:
    if isinstance(window, LastDays):
        return {"last_days": window.days}
    return {"from": window.start.isoformat(), "to": window.end.isoformat()}


def _node(rule: Rule) -> dict[str, AnyValue]:
    match rule:
        case All(parts):
            return {"node": "all", "parts": [_node(part) for part in parts]}
        case Any(parts):
            return {"node": "any", "parts": [_node(part) for part in parts]}
        case Not(part):
            return {"node": "not", "part": _node(part)}
        case Compare(feature, op, value):
            return {"node": "compare", "feature": feature, "op": op.value, "value": value}
        case Between(feature, low, high):
            return {"node": "between", "feature": feature, "low": low, "high": high}
        case OneOf(feature, values):
            return {"node": "in", "feature": feature, "values": list(values)}
        case Exists(feature):
            return {"node": "exists", "feature": feature}
        case InterestScore(topic, minimum, top):
            return {"node": "interest", "topic": topic, "minimum": minimum, "top": top}
        case EventWindow(event_type, window, at_least, at_most, channel):
            return {
                "node": "events",
                "type": event_type,
                "window": _window(window),
                "at_least": at_least,
                "at_most": at_most,
                "channel": channel,
            }
        case InSegment(segment):
            return {"node": "in_segment", "segment": segment}
        case RandomBucket(salt, buckets, lower, upper):
            return {"node": "bucket", "salt": salt, "buckets": buckets, "lower": lower, "upper": upper}
    raise TypeError("not a rule node")  # unreachable for a Rule; mypy cannot see the match is total


def from_json(obj: object) -> Rule:
    """The rule ``to_json`` wrote; ``RuleJsonError`` for anything else."""
    top = _fields(obj, "the document", {"v", "rule"})
    if type(top["v"]) is not int or top["v"] != VERSION:
        raise RuleJsonError(f"the document is not of rule format version {VERSION}")
    try:
        return _read(top["rule"], "rule", 1)
    except RuleShapeError as error:
        raise RuleJsonError(str(error)) from None


def _fields(obj: object, where: str, names: set[str]) -> Mapping[str, AnyValue]:
    if not isinstance(obj, Mapping) or set(obj) != names:
        raise RuleJsonError(f"{where} is not an object with exactly the fields {sorted(names)}")
    return obj


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RuleJsonError(f"{where} is not a text")
    return value


def _integer(value: object, where: str) -> int:
    if type(value) is not int:
        raise RuleJsonError(f"{where} is not an integer")
    return value


def _optional_integer(value: object, where: str) -> int | None:
    return None if value is None else _integer(value, where)


def _number(value: object, where: str) -> int | float:
    if type(value) not in (int, float) or (isinstance(value, float) and not math.isfinite(value)):
        raise RuleJsonError(f"{where} is not a finite number")
    return value  # type: ignore[return-value]


def _literal(value: object, where: str) -> Literal:
    if isinstance(value, str | bool):
        return value
    return _number(value, where)


def _day(value: object, where: str) -> date:
    try:
        return date.fromisoformat(_text(value, where))
    except ValueError:
        raise RuleJsonError(f"{where} is not an ISO date") from None


def _read_window(obj: object, where: str) -> Window:
    if isinstance(obj, Mapping) and set(obj) == {"last_days"}:
        return LastDays(_integer(obj["last_days"], f"{where}.last_days"))
    window = _fields(obj, where, {"from", "to"})
    return DateRange(_day(window["from"], f"{where}.from"), _day(window["to"], f"{where}.to"))


def _parts(obj: object, where: str, level: int) -> tuple[Rule, ...]:
    if not isinstance(obj, list):
        raise RuleJsonError(f"{where} is not a list")
    return tuple(_read(part, f"{where}[{index}]", level + 1) for index, part in enumerate(obj))


_FIELDS: Final[dict[str, set[str]]] = {
    "all": {"parts"},
    "any": {"parts"},
    "not": {"part"},
    "compare": {"feature", "op", "value"},
    "between": {"feature", "low", "high"},
    "in": {"feature", "values"},
    "exists": {"feature"},
    "interest": {"topic", "minimum", "top"},
    "events": {"type", "window", "at_least", "at_most", "channel"},
    "in_segment": {"segment"},
    "bucket": {"salt", "buckets", "lower", "upper"},
}


def _read(obj: object, where: str, level: int) -> Rule:
    if level > MAX_DEPTH:
        raise RuleJsonError(f"the rule is deeper than {MAX_DEPTH} levels")
    tag = obj.get("node") if isinstance(obj, Mapping) else None
    if not isinstance(tag, str) or tag not in _FIELDS:
        raise RuleJsonError(f"{where} is not a rule node")
    node = _fields(obj, where, _FIELDS[tag] | {"node"})
    return _READERS[tag](node, where, level)


def _read_compare(node: Mapping[str, AnyValue], where: str, _level: int) -> Rule:
    op = node["op"]
    if not isinstance(op, str) or op not in {member.value for member in CompareOp}:
        raise RuleJsonError(f"{where}.op is not a comparison operator")
    return Compare(_text(node["feature"], f"{where}.feature"), CompareOp(op), _literal(node["value"], f"{where}.value"))


def _read_in(node: Mapping[str, AnyValue], where: str, _level: int) -> Rule:
    values = node["values"]
    if not isinstance(values, list):
        raise RuleJsonError(f"{where}.values is not a list")
    return OneOf(
        _text(node["feature"], f"{where}.feature"),
        tuple(_literal(value, f"{where}.values[{index}]") for index, value in enumerate(values)),
    )


def _read_interest(node: Mapping[str, AnyValue], where: str, _level: int) -> Rule:
    return InterestScore(
        _text(node["topic"], f"{where}.topic"),
        float(_number(node["minimum"], f"{where}.minimum")),
        _optional_integer(node["top"], f"{where}.top"),
    )


def _read_events(node: Mapping[str, AnyValue], where: str, _level: int) -> Rule:
    channel = node["channel"]
    return EventWindow(
        _text(node["type"], f"{where}.type"),
        _read_window(node["window"], f"{where}.window"),
        _optional_integer(node["at_least"], f"{where}.at_least"),
        _optional_integer(node["at_most"], f"{where}.at_most"),
        None if channel is None else _text(channel, f"{where}.channel"),
    )


_READERS: Final[dict[str, Callable[[Mapping[str, AnyValue], str, int], Rule]]] = {
    "all": lambda node, where, level: All(_parts(node["parts"], f"{where}.parts", level)),
    "any": lambda node, where, level: Any(_parts(node["parts"], f"{where}.parts", level)),
    "not": lambda node, where, level: Not(_read(node["part"], f"{where}.part", level + 1)),
    "compare": _read_compare,
    "between": lambda node, where, _level: Between(
        _text(node["feature"], f"{where}.feature"),
        _number(node["low"], f"{where}.low"),
        _number(node["high"], f"{where}.high"),
    ),
    "in": _read_in,
    "exists": lambda node, where, _level: Exists(_text(node["feature"], f"{where}.feature")),
    "interest": _read_interest,
    "events": _read_events,
    "in_segment": lambda node, where, _level: InSegment(_text(node["segment"], f"{where}.segment")),
    "bucket": lambda node, where, _level: RandomBucket(
        _text(node["salt"], f"{where}.salt"),
        _integer(node["buckets"], f"{where}.buckets"),
        _integer(node["lower"], f"{where}.lower"),
        _integer(node["upper"], f"{where}.upper"),
    ),
}
