"""Whether a well-shaped rule means something here: what it names exists, its values fit, and
saving it keeps the segments a DAG.

The AST's constructors already refused what no rule can hold (``rules.RuleShapeError``); this
checks a rule against the catalogue (features, event types, channels), the taxonomy and the
segments that exist, and lists every problem, each with the path of its node
(``server.segments.paths``) so that a caller holding the text can name a line and a column
(``locate``). Messages may name catalogue words (a feature, a topic, an event type) and, for a
cycle, the segment names on it (marketers' slugs, not personal data); they never repeat a value,
name or text the rule itself holds that the catalogue does not, since that may be anything.

``time_dependent`` says whether a rule's truth can change with time alone, without a new event:
the scheduled sweep re-evaluates those.
"""

from __future__ import annotations

import difflib
import enum
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from server.segments.catalogue import CHANNELS, EVENT_TYPES, FEATURES, Feature, FeatureKind, value_allowed
from server.segments.paths import Locations, NodePath, Position, first_too_deep, with_paths
from server.segments.rules import (
    MAX_DEPTH,
    Between,
    Compare,
    CompareOp,
    EventWindow,
    Exists,
    InSegment,
    InterestScore,
    Literal,
    OneOf,
    Rule,
    segments_named,
)
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["ProblemCode", "RuleProblem", "locate", "validate"]

_ORDERING: Final = frozenset({CompareOp.LT, CompareOp.LE, CompareOp.GT, CompareOp.GE})
_KIND_WORDS: Final = {
    FeatureKind.INTEGER: "a whole number",
    FeatureKind.NUMBER: "a number",
    FeatureKind.TEXT: "a text",
    FeatureKind.FLAG: "a flag (true or false)",
}


class ProblemCode(enum.StrEnum):
    UNKNOWN_FEATURE = "UNKNOWN_FEATURE"
    WRONG_TYPE = "WRONG_TYPE"
    UNKNOWN_VALUE = "UNKNOWN_VALUE"
    UNKNOWN_TOPIC = "UNKNOWN_TOPIC"
    SENSITIVE_TOPIC = "SENSITIVE_TOPIC"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    UNKNOWN_SEGMENT = "UNKNOWN_SEGMENT"
    CYCLE = "CYCLE"
    TOO_DEEP = "TOO_DEEP"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One reason a rule cannot be saved, at the node ``path`` points to (``()``: the root)."""

    code: ProblemCode
    message: str
    path: NodePath


def validate(
    rule: Rule, *, taxonomy: Taxonomy, segments: Mapping[str, frozenset[str]], name: str | None = None
) -> list[RuleProblem]:
    """Every problem of ``rule``, in the order its nodes are written.

    ``segments`` maps each existing segment to the segments its rule names (its edges);
    ``name`` is the segment being saved with ``rule``, which must not then lie on a cycle (a
    segment naming itself included). Without ``name`` (a preview) no cycle can be made.
    """
    too_deep = first_too_deep(rule)
    if too_deep is not None:
        return [RuleProblem(ProblemCode.TOO_DEEP, f"a rule nests at most {MAX_DEPTH} levels deep", too_deep)]
    graph = _graph_with(segments, name, rule)
    return [
        RuleProblem(code, message, path)
        for path, node in with_paths(rule)
        for code, message in _problems(node, taxonomy=taxonomy, graph=graph, name=name)
    ]


def locate(problem: RuleProblem, locations: Locations) -> Position | None:
    """Where the problem's node was written, for a rule read by ``dsl.parse_located``."""
    return locations.get(problem.path)


_Found = Iterator[tuple[ProblemCode, str]]


def _problems(node: Rule, *, taxonomy: Taxonomy, graph: Mapping[str, frozenset[str]], name: str | None) -> _Found:
    match node:
        case Compare(feature, op, value):
            yield from _compare_problems(feature, op, value)
        case Between(feature, low, high):
            yield from _between_problems(feature, low, high)
        case OneOf(feature, values):
            known = FEATURES.get(feature)
            if known is None:
                yield _unknown_feature(feature)
            else:
                for index, value in enumerate(values, start=1):
                    yield from _value_problems(known, value, f"value {index} of 'in'")
        case Exists(feature):
            if feature not in FEATURES:
                yield _unknown_feature(feature)
        case InterestScore(topic):
            yield from _topic_problems(topic, taxonomy)
        case EventWindow(event_type=event_type, channel=channel):
            if event_type not in EVENT_TYPES:
                yield ProblemCode.UNKNOWN_EVENT_TYPE, f"unknown event type; the event types are {_listed(EVENT_TYPES)}"
            if channel is not None and channel not in CHANNELS:
                yield ProblemCode.UNKNOWN_CHANNEL, f"unknown channel; the channels are {_listed(CHANNELS)}"
        case InSegment(segment):
            yield from _segment_problems(segment, graph, name)


def _compare_problems(feature: str, op: CompareOp, value: Literal) -> _Found:
    known = FEATURES.get(feature)
    if known is None:
        yield _unknown_feature(feature)
        return
    if op in _ORDERING and known.kind in (FeatureKind.TEXT, FeatureKind.FLAG):
        yield ProblemCode.WRONG_TYPE, f"{known.name} is {_KIND_WORDS[known.kind]}: it is compared with = or != only"
    yield from _value_problems(known, value, "the value")


def _between_problems(feature: str, low: int | float, high: int | float) -> _Found:
    known = FEATURES.get(feature)
    if known is None:
        yield _unknown_feature(feature)
    elif known.kind in (FeatureKind.TEXT, FeatureKind.FLAG):
        yield ProblemCode.WRONG_TYPE, f"{known.name} is {_KIND_WORDS[known.kind]}: 'between' is for numbers"
    else:
        yield from _value_problems(known, low, "the low end")
        yield from _value_problems(known, high, "the high end")


def _value_problems(feature: Feature, value: Literal, what: str) -> _Found:
    if value_allowed(feature, value):
        return
    if feature.kind is not FeatureKind.TEXT or not isinstance(value, str):
        yield ProblemCode.WRONG_TYPE, f"{what} is not {_KIND_WORDS[feature.kind]}, as {feature.name} is"
    elif feature.values is not None:
        yield ProblemCode.UNKNOWN_VALUE, f"{what} is not one of {feature.name}'s values: {_listed(feature.values)}"
    else:
        yield ProblemCode.UNKNOWN_VALUE, f"{what} is not a {feature.name} code such as FR or FR-IDF"


def _unknown_feature(feature: str) -> tuple[ProblemCode, str]:
    return ProblemCode.UNKNOWN_FEATURE, f"unknown feature{_suggestion(feature, FEATURES)}; docs/segments.md lists them"


def _topic_problems(topic: str, taxonomy: Taxonomy) -> _Found:
    if topic not in taxonomy:
        shown = taxonomy.ids - taxonomy.sensitive_ids
        yield ProblemCode.UNKNOWN_TOPIC, f"unknown topic{_suggestion(topic, shown)}"
    elif taxonomy.is_sensitive(topic):
        yield (
            ProblemCode.SENSITIVE_TOPIC,
            f"{topic} is a special category of data (GDPR Art. 9): interests in it are never used for audiences",
        )


def _segment_problems(segment: str, graph: Mapping[str, frozenset[str]], name: str | None) -> _Found:
    if segment != name and segment not in graph:
        yield ProblemCode.UNKNOWN_SEGMENT, f"no segment has this name{_suggestion(segment, graph)}"
        return
    if name is None:
        return
    cycle = _path_back(segment, name, graph)
    if cycle is not None:
        yield ProblemCode.CYCLE, f"in_segment makes a cycle: {' -> '.join((name, *cycle))}"


def _graph_with(segments: Mapping[str, frozenset[str]], name: str | None, rule: Rule) -> Mapping[str, frozenset[str]]:
    """The segment graph once ``name`` is saved with ``rule``."""
    if name is None:
        return segments
    return {**segments, name: segments_named(rule)}


def _path_back(start: str, goal: str, graph: Mapping[str, frozenset[str]]) -> tuple[str, ...] | None:
    """The shortest chain of segment names from ``start`` to ``goal`` along the graph's edges."""
    came_from: dict[str, str | None] = {start: None}
    waiting = deque([start])
    while waiting:
        current = waiting.popleft()
        if current == goal:
            chain: list[str] = []
            step: str | None = current
            while step is not None:
                chain.append(step)
                step = came_from[step]
            return tuple(reversed(chain))
        for following in sorted(graph.get(current, frozenset())):
            if following not in came_from:
                came_from[following] = current
                waiting.append(following)
    return None


def _suggestion(written: str, known: Iterable[str]) -> str:
    """`` (did you mean x?)`` with a close known word: it echoes the catalogue, never ``written``."""
    close = difflib.get_close_matches(written, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _listed(words: Iterable[str]) -> str:
    return ", ".join(words)
