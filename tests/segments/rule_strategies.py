"""Hypothesis strategies for rule ASTs: the language's round trip and the evaluators' parity share them.

``rules()`` draws only rules that validate against the catalogue (real features of the right
kind, values in their vocabularies, topics from ``topics``, segments from ``segments``), so an
evaluator can run every one; ``any_names=True`` also draws names no catalogue holds, for the text
round trip, which must hold for any well-shaped AST.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

from server.segments.catalogue import CHANNELS, EVENT_TYPES, FEATURES, FeatureKind
from server.segments.rules import (
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
    Not,
    OneOf,
    RandomBucket,
    Rule,
)

NAME_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
SMALL_INTS = st.integers(min_value=-5, max_value=400)
SMALL_FLOATS = st.floats(min_value=-10.0, max_value=500.0, allow_nan=False, allow_infinity=False, width=32)
REGIONS = st.sampled_from(("FR", "DE", "FR-IDF", "US-CA", "UK", "ES"))


def _value_for(name: str) -> st.SearchStrategy[bool | int | float | str]:
    feature = FEATURES[name]
    match feature.kind:
        case FeatureKind.FLAG:
            return st.booleans()
        case FeatureKind.INTEGER:
            return SMALL_INTS
        case FeatureKind.NUMBER:
            return st.one_of(SMALL_INTS, SMALL_FLOATS.map(lambda x: round(x, 3)))
        case FeatureKind.TEXT:
            return st.sampled_from(feature.values) if feature.values else REGIONS


def _numeric(name: str) -> bool:
    return FEATURES[name].kind in (FeatureKind.INTEGER, FeatureKind.NUMBER)


@st.composite
def comparisons(draw: st.DrawFn, *, any_names: bool = False) -> Rule:
    name = draw(st.sampled_from(sorted(FEATURES)))
    kind = draw(st.sampled_from(("compare", "between", "in", "exists")))
    if kind == "exists":
        return Exists(draw(NAME_TEXT) if any_names and draw(st.booleans()) else name)
    if kind == "between" and _numeric(name):
        low = draw(SMALL_INTS)
        return Between(name, low, low + draw(st.integers(min_value=0, max_value=50)))
    if kind == "in":
        values = draw(st.lists(_value_for(name), min_size=1, max_size=4, unique=True))
        return OneOf(name, tuple(values))
    ops = list(CompareOp) if _numeric(name) else [CompareOp.EQ, CompareOp.NE]
    return Compare(name, draw(st.sampled_from(ops)), draw(_value_for(name)))


@st.composite
def windows(draw: st.DrawFn) -> LastDays | DateRange:
    if draw(st.booleans()):
        return LastDays(draw(st.integers(min_value=1, max_value=120)))
    start = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)))
    return DateRange(start, start + timedelta(days=draw(st.integers(min_value=0, max_value=90))))


@st.composite
def event_windows(draw: st.DrawFn, *, any_names: bool = False) -> Rule:
    at_least = draw(st.none() | st.integers(min_value=0, max_value=6))
    at_most = draw(st.none() | st.integers(min_value=at_least or 0, max_value=12))
    if at_least is None and at_most is None:
        at_least = 1
    event_type = draw(NAME_TEXT if any_names and draw(st.booleans()) else st.sampled_from(EVENT_TYPES))
    channel = draw(st.none() | st.sampled_from(CHANNELS))
    return EventWindow(event_type, draw(windows()), at_least, at_most, channel)


def leaves(topics: tuple[str, ...], segments: tuple[str, ...], *, any_names: bool = False) -> st.SearchStrategy[Rule]:
    topic = NAME_TEXT if any_names or not topics else st.sampled_from(topics)
    choices: list[st.SearchStrategy[Rule]] = [
        comparisons(any_names=any_names),
        event_windows(any_names=any_names),
        st.builds(
            InterestScore,
            topic,
            st.floats(min_value=0.0, max_value=1.0, allow_nan=False).map(lambda x: round(x, 4)),
            st.none() | st.integers(min_value=1, max_value=10),
        ),
        st.builds(
            lambda salt, buckets, lower, width: RandomBucket(
                salt,
                buckets,
                min(lower, buckets - 1),
                min(lower, buckets - 1) + max(1, min(width, buckets - min(lower, buckets - 1))),
            ),
            st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12),
            st.integers(min_value=2, max_value=100),
            st.integers(min_value=0, max_value=99),
            st.integers(min_value=1, max_value=100),
        ),
    ]
    if segments or any_names:
        choices.append(st.builds(InSegment, NAME_TEXT if any_names else st.sampled_from(segments)))
    return st.one_of(choices)


def rules(
    topics: tuple[str, ...] = (),
    segments: tuple[str, ...] = (),
    *,
    any_names: bool = False,
    max_leaves: int = 8,
) -> st.SearchStrategy[Rule]:
    """Rules of at most ``max_leaves`` leaves joined by and / or / not."""
    return st.recursive(
        leaves(topics, segments, any_names=any_names),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda parts: All(tuple(parts))),
            st.lists(inner, min_size=2, max_size=3).map(lambda parts: Any(tuple(parts))),
            inner.map(Not),
        ),
        max_leaves=max_leaves,
    )
