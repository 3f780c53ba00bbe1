"""The canonical text of a rule: one way to write each, which ``dsl.parse`` reads back to it.

``parse(render(rule)) == rule`` for every well-shaped rule. A float is written with ``repr``,
which reads back bit for bit and always has a point or an exponent, so it reads back a float; an
int has neither and reads back an int; a flag is ``true`` or ``false``. An ``and`` or ``or``
inside another (or under ``not``) is parenthesised, so it reads back as the same group rather
than flattened into its parent. Names that are not bare identifiers, or are keywords, go between
backticks; texts are escaped (``server.segments.quoting``).
"""

from __future__ import annotations

import math

from server.segments.grammar import KEYWORDS, NAME
from server.segments.paths import first_too_deep
from server.segments.quoting import BACKTICK, quote
from server.segments.rules import (
    MAX_DEPTH,
    All,
    Any,
    Between,
    Compare,
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

__all__ = ["render"]


def render(rule: Rule) -> str:
    """Refuses (``RuleShapeError``) only what no text holds: nesting past ``MAX_DEPTH``, a number
    that is not finite."""
    if first_too_deep(rule) is not None:
        raise RuleShapeError(f"a rule nests at most {MAX_DEPTH} levels deep")
    return _render(rule)


def _render(rule: Rule) -> str:
    match rule:
        case All(parts):
            return " and ".join(_grouped(part) for part in parts)
        case Any(parts):
            return " or ".join(_grouped(part) for part in parts)
        case Not(part):
            return f"not {_grouped(part)}"
        case Compare(feature, op, value):
            return f"{_feature(feature)} {op.value} {_literal(value)}"
        case Between(feature, low, high):
            return f"{_feature(feature)} between {_literal(low)} and {_literal(high)}"
        case OneOf(feature, values):
            return f"{_feature(feature)} in ({', '.join(_literal(value) for value in values)})"
        case Exists(feature):
            return f"exists({_feature(feature)})"
        case InterestScore(topic, minimum, top):
            shown = "" if top is None else f", top={top}"
            return f"interest({quote(topic)}{shown}) >= {_literal(float(minimum))}"
        case EventWindow(event_type, window, at_least, at_most, channel):
            on = "" if channel is None else f", channel={quote(channel)}"
            return f"events({quote(event_type)}{on}) {_event_count(at_least, at_most)} {_window(window)}"
        case InSegment(segment):
            return f"in_segment({quote(segment)})"
        case RandomBucket(salt, buckets, lower, upper):
            return f"bucket({quote(salt)}, {buckets}) {_bucket_bound(buckets, lower, upper)}"


def _grouped(rule: Rule) -> str:
    """A group inside another group, or under ``not``, is parenthesised: it reads back as itself."""
    return f"({_render(rule)})" if isinstance(rule, All | Any) else _render(rule)


def _feature(name: str) -> str:
    return name if NAME.fullmatch(name) and name not in KEYWORDS else quote(name, BACKTICK)


def _literal(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RuleShapeError("a number in a rule is finite")
        return repr(value)
    return quote(value)


def _event_count(at_least: int | None, at_most: int | None) -> str:
    if at_most is None:
        return f">= {at_least}"
    if at_least is None:
        return f"<= {at_most}"
    return f"= {at_least}" if at_least == at_most else f"between {at_least} and {at_most}"


def _window(window: Window) -> str:
    if isinstance(window, LastDays):
        return f"within {window.days} {'day' if window.days == 1 else 'days'}"
    return f"from {window.start.isoformat()} to {window.end.isoformat()}"


def _bucket_bound(buckets: int, lower: int, upper: int) -> str:
    if lower == 0:
        return f"< {upper}"
    if upper == buckets:
        return f">= {lower}"
    return f"= {lower}" if upper == lower + 1 else f"between {lower} and {upper - 1}"
