"""What one evaluation does with each segment: its rule compiled, or its members kept.

Segments are taken dependencies first (a segment's ``in_segment`` reads the column of the one it
names, which must be filled before it). A segment is *evaluated* when the caller selects it and
its rule can be read and compiled; every other one is *kept*: its stored members stay, less the
subjects no longer evaluated at all (a withdrawal or a restriction ends every stay). A stored rule
that cannot be read, names a segment that does not exist, or sits on a dependency cycle is a
failure with a code; so is one whose expression fails on the data (recorded while evaluating).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from server.segments.compile import RuleNotEvaluable, compile_rule
from server.segments.rule_frame import Needs, needs_of
from server.segments.rule_json import RuleJsonError, from_json
from server.segments.rules import Rule, segments_named
from server.segments.store import StoredSegment
from server.segments.timing import time_dependent

__all__ = ["FailureCode", "Plan", "plan_of", "swept"]


class FailureCode(enum.StrEnum):
    RULE_INVALID = "RULE_INVALID"
    UNKNOWN_FEATURE = "UNKNOWN_FEATURE"
    WRONG_VALUE_KIND = "WRONG_VALUE_KIND"
    UNKNOWN_SEGMENT = "UNKNOWN_SEGMENT"
    DEPENDENCY_CYCLE = "DEPENDENCY_CYCLE"
    EVALUATION_FAILED = "EVALUATION_FAILED"
    EVALUATION_INTERRUPTED = "EVALUATION_INTERRUPTED"


@dataclass(slots=True)
class Plan:
    order: list[StoredSegment]
    """Every segment, each after those it names."""
    expressions: dict[int, pl.Expr]
    """The evaluated segments' expressions (``server.segments.compile``)."""
    selected: frozenset[int]
    """The segments the caller asked to evaluate (failed ones included)."""
    failures: dict[int, str] = field(default_factory=dict)
    """Segment id -> code; grows while evaluating (a failed segment is kept from then on)."""
    needs: Needs = field(default_factory=Needs)
    named: dict[int, frozenset[int]] = field(default_factory=dict)
    """Each segment's direct dependencies, by id."""

    def evaluated(self, segment_id: int) -> pl.Expr | None:
        return None if segment_id in self.failures else self.expressions.get(segment_id)

    def dependents_of(self, segment_ids: Iterable[int]) -> set[int]:
        """Every segment that reads one of ``segment_ids``, directly or not (themselves excluded)."""
        found: set[int] = set()
        frontier = set(segment_ids)
        while frontier:
            frontier = {s for s, deps in self.named.items() if deps & frontier and s not in found}
            found |= frontier
        return found - set(segment_ids)


def _rule(segment: StoredSegment) -> Rule | FailureCode:
    try:
        return from_json(segment.rule)
    except RuleJsonError:
        return FailureCode.RULE_INVALID


def plan_of(segments: list[StoredSegment], *, select: Callable[[StoredSegment, Rule | None], bool]) -> Plan:
    """``select(segment, rule)``: whether to evaluate it (``rule`` None when unreadable)."""
    by_name = {segment.name: segment.id for segment in segments}
    rules: dict[int, Rule] = {}
    failures: dict[int, str] = {}
    named: dict[int, frozenset[int]] = {}
    for segment in segments:
        rule = _rule(segment)
        if isinstance(rule, FailureCode):
            failures[segment.id] = rule
            named[segment.id] = frozenset()
            continue
        rules[segment.id] = rule
        names = segments_named(rule)
        named[segment.id] = frozenset(by_name[name] for name in names if name in by_name)
        if any(name not in by_name for name in names):
            failures[segment.id] = FailureCode.UNKNOWN_SEGMENT
    order = _dependencies_first(segments, named, failures)
    selected = frozenset(s.id for s in order if select(s, rules.get(s.id)))
    expressions: dict[int, pl.Expr] = {}
    for segment_id in sorted(selected):
        if segment_id in failures:
            continue
        try:
            expressions[segment_id] = compile_rule(rules[segment_id])
        except RuleNotEvaluable as error:
            failures[segment_id] = error.code.value
    needs = needs_of(rules[segment_id] for segment_id in expressions)
    return Plan(order, expressions, selected, failures, needs, named)


def _dependencies_first(
    segments: list[StoredSegment], named: dict[int, frozenset[int]], failures: dict[int, str]
) -> list[StoredSegment]:
    """Kahn's order by id; segments left over sit on (or behind) a cycle: failed, kept, last."""
    remaining = {segment.id: segment for segment in segments}
    order: list[StoredSegment] = []
    placed: set[int] = set()
    while True:
        ready = sorted(s for s in remaining if named[s] <= placed)
        if not ready:
            break
        for segment_id in ready:
            order.append(remaining.pop(segment_id))
            placed.add(segment_id)
    for segment_id in sorted(remaining):
        failures[segment_id] = FailureCode.DEPENDENCY_CYCLE
        order.append(remaining[segment_id])
    return order


def swept(segments: list[StoredSegment]) -> Callable[[StoredSegment, Rule | None], bool]:
    """The sweep's selection: rules that change with time alone, and every segment reading one."""
    by_name = {segment.name: segment for segment in segments}
    memo: dict[int, bool] = {}

    def ages(segment: StoredSegment, seen: frozenset[int]) -> bool:
        if segment.id in memo:
            return memo[segment.id]
        if segment.id in seen:
            return False
        rule = _rule(segment)
        result = segment.time_dependent
        if not isinstance(rule, FailureCode):
            result = (
                result
                or time_dependent(rule)
                or any(ages(by_name[name], seen | {segment.id}) for name in segments_named(rule) if name in by_name)
            )
        memo[segment.id] = result
        return result

    return lambda segment, _rule_read: ages(segment, frozenset())
