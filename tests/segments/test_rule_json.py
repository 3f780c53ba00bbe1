"""The stored form of a rule: every well-shaped rule comes back equal through real JSON, and
anything else is refused with ``RuleJsonError``, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.segments.rule_json import RuleJsonError, from_json, to_json
from server.segments.rules import Compare, CompareOp, Not, Rule
from tests.segments.rule_strategies import rules

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
NODE_TAGS = st.sampled_from(["all", "any", "not", "compare", "between", "in", "exists", "interest", "events", "bucket"])


@given(rules(any_names=True))
def test_every_rule_comes_back_equal_through_json(rule: Rule) -> None:
    assert from_json(json.loads(json.dumps(to_json(rule)))) == rule


@given(JSON_VALUES)
def test_anything_else_is_refused_cleanly(value: object) -> None:
    with pytest.raises(RuleJsonError):
        from_json(value)


@given(
    NODE_TAGS, st.dictionaries(st.sampled_from(["parts", "part", "feature", "op", "value", "low", "high"]), JSON_VALUES)
)
def test_a_tagged_node_with_wrong_fields_is_refused_cleanly(tag: str, fields: dict[str, object]) -> None:
    with pytest.raises(RuleJsonError):
        from_json({"v": 1, "rule": {"node": tag, **fields}})


@pytest.mark.parametrize(
    "document",
    [
        {"v": 2, "rule": {"node": "exists", "feature": "region"}},
        {"v": True, "rule": {"node": "exists", "feature": "region"}},
        {"v": 1, "rule": {"node": "compare", "feature": "events_7d", "op": "~", "value": 1}},
        {"v": 1, "rule": {"node": "between", "feature": "events_7d", "low": 5, "high": 1}},
        {"v": 1, "rule": {"node": "bucket", "salt": "s", "buckets": True, "lower": 0, "upper": 1}},
        {"v": 1, "rule": {"node": "all", "parts": [{"node": "exists", "feature": "region"}]}},
        {"v": 1, "rule": {"node": "compare", "feature": "events_7d", "op": ">", "value": float("nan")}},
        {"v": 1, "rule": {"node": "exists", "feature": "region", "extra": 1}},
    ],
)
def test_malformed_documents_name_the_problem(document: object) -> None:
    with pytest.raises(RuleJsonError):
        from_json(document)


def test_a_tree_deeper_than_allowed_is_refused_without_recursion_trouble() -> None:
    rule: Rule = Compare("events_7d", CompareOp.GT, 1)
    document = to_json(rule)["rule"]
    for _ in range(5_000):
        document = {"node": "not", "part": document}
    with pytest.raises(RuleJsonError, match="deeper"):
        from_json({"v": 1, "rule": document})
    assert from_json(to_json(Not(rule))) == Not(rule)
