"""Which rules can change their answer with time alone, and so need the sweep as well as real time.

Real time re-evaluates a subject when its data changes; a rule whose truth moves while nothing
happens ("no purchase for 30 days", a decaying interest, the last N days) would go stale
without a scheduled re-evaluation. A feature says whether it ages (``Feature.time_dependent``);
interest scores decay and "last N days" windows slide; fixed date ranges, buckets and declared
traits do not. ``in_segment`` counts through the segment it names: the evaluator sweeps a
segment whose dependency is swept.
"""

from __future__ import annotations

from server.segments.catalogue import FEATURES
from server.segments.paths import nodes
from server.segments.rules import Between, Compare, EventWindow, Exists, InterestScore, LastDays, OneOf, Rule

__all__ = ["time_dependent"]


def _ages(node: Rule) -> bool:
    match node:
        case Compare() | Between() | OneOf() | Exists():
            feature = FEATURES.get(node.feature)
            return feature is None or feature.time_dependent
        case InterestScore():
            return True
        case EventWindow(window=window):
            return isinstance(window, LastDays)
    return False


def time_dependent(rule: Rule) -> bool:
    """Whether the rule's own nodes can change truth with time alone (not counting ``in_segment``)."""
    return any(_ages(node) for node in nodes(rule))
