"""The GraphQL input of a rule builds the same AST as its text, names the input field of a shape
it refuses, and answers problems in one GraphQL shape whatever the rule came as."""

from __future__ import annotations

from datetime import date
from typing import Any as AnyValue

import pytest
import strawberry
from hypothesis import given, settings

from schema.segments.problem_types import RuleProblemType, from_input_error, from_problem, from_syntax_error
from schema.segments.rule_input import (
    BetweenInput,
    BucketInput,
    CompareInput,
    DateRangeInput,
    EventsInput,
    InInput,
    InputCode,
    InterestInput,
    RuleInput,
    RuleInputError,
    ValueInput,
    WindowInput,
    input_field,
    rule_from_input,
)
from server.segments.dsl import RuleSyntaxError, parse, parse_located, render
from server.segments.rules import (
    MAX_DEPTH,
    All,
    Any,
    Between,
    Compare,
    CompareOp,
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
)
from server.segments.validation import validate
from server.taxonomy.taxonomy import load_taxonomy
from tests.segments.rule_strategies import rules


def value_input(value: Literal) -> ValueInput:
    if isinstance(value, bool):
        return ValueInput(flag=value)
    if isinstance(value, int):
        return ValueInput(integer=value)
    if isinstance(value, float):
        return ValueInput(number=value)
    return ValueInput(text=value)


def as_input(rule: Rule) -> RuleInput:
    """The input a client would send for ``rule`` (the test's own, independent of the reader)."""
    match rule:
        case All(parts):
            return RuleInput(all_of=[as_input(part) for part in parts])
        case Any(parts):
            return RuleInput(any_of=[as_input(part) for part in parts])
        case Not(part):
            return RuleInput(negated=as_input(part))
        case Compare(feature, op, value):
            return RuleInput(compare=CompareInput(feature=feature, op=op, value=value_input(value)))
        case Between(feature, low, high):
            return RuleInput(between=BetweenInput(feature=feature, low=value_input(low), high=value_input(high)))
        case OneOf(feature, values):
            return RuleInput(one_of=InInput(feature=feature, values=[value_input(value) for value in values]))
        case Exists(feature):
            return RuleInput(exists=feature)
        case InterestScore(topic, minimum, top):
            return RuleInput(interest=InterestInput(topic=topic, minimum=minimum, top=top))
        case EventWindow(event_type, window, at_least, at_most, channel):
            written = (
                WindowInput(last_days=window.days)
                if isinstance(window, LastDays)
                else WindowInput(dates=DateRangeInput(start=window.start, end=window.end))
            )
            return RuleInput(
                events=EventsInput(type=event_type, window=written, at_least=at_least, at_most=at_most, channel=channel)
            )
        case InSegment(segment):
            return RuleInput(in_segment=segment)
        case RandomBucket(salt, buckets, lower, upper):
            return RuleInput(bucket=BucketInput(salt=salt, buckets=buckets, lower=lower, upper=upper))


@settings(max_examples=500, deadline=None)
@given(rules(any_names=True))
def test_any_rule_sent_as_input_is_read_as_itself(rule: Rule) -> None:
    assert repr(rule_from_input(as_input(rule))) == repr(rule)


def test_the_input_and_the_text_of_a_rule_build_the_same_tree() -> None:
    sent = RuleInput(
        all_of=[
            RuleInput(interest=InterestInput(topic="sports/running", minimum=0.6)),
            RuleInput(compare=CompareInput(feature="purchases_90d", op=CompareOp.GE, value=ValueInput(integer=2))),
            RuleInput(negated=RuleInput(in_segment="churned")),
            RuleInput(
                events=EventsInput(
                    type="purchase",
                    window=WindowInput(dates=DateRangeInput(start=date(2026, 1, 1), end=date(2026, 3, 31))),
                    at_least=1,
                    at_most=3,
                )
            ),
            RuleInput(bucket=BucketInput(salt="holdout-2027", buckets=100, lower=0, upper=10)),
        ]
    )
    assert rule_from_input(sent) == parse(
        'interest("sports/running") >= 0.6 and purchases_90d >= 2 and not in_segment("churned") '
        'and events("purchase") between 1 and 3 from 2026-01-01 to 2026-03-31 and bucket("holdout-2027", 100) < 10'
    )


def compare(feature: str, value: ValueInput) -> RuleInput:
    return RuleInput(compare=CompareInput(feature=feature, op=CompareOp.EQ, value=value))


@pytest.mark.parametrize(
    ("sent", "code", "field", "path", "words"),
    [
        (RuleInput(), InputCode.SHAPE, "rule", (), "set exactly one of and, or, not, compare"),
        (RuleInput(exists="a", in_segment="b"), InputCode.SHAPE, "rule", (), "set exactly one of"),
        (RuleInput(all_of=[RuleInput(exists="a")]), InputCode.SHAPE, "rule.and", (), "'and' joins at least two"),
        (
            RuleInput(any_of=[RuleInput(exists="a"), compare("b", ValueInput(integer=1, text="x"))]),
            InputCode.SHAPE,
            "rule.or.1.compare.value",
            (1,),
            "set exactly one of number, integer, text, flag",
        ),
        (
            RuleInput(
                negated=RuleInput(
                    between=BetweenInput(feature="x", low=ValueInput(integer=5), high=ValueInput(number=1.0))
                )
            ),
            InputCode.SHAPE,
            "rule.not.between",
            (0,),
            "low end at most its high end",
        ),
        (
            RuleInput(between=BetweenInput(feature="x", low=ValueInput(text="a"), high=ValueInput(integer=1))),
            InputCode.SHAPE,
            "rule.between.low",
            (),
            "'between' takes a number",
        ),
        (RuleInput(one_of=InInput(feature="x", values=[])), InputCode.SHAPE, "rule.in", (), "'in' lists 1 to"),
        (
            RuleInput(interest=InterestInput(topic="sports", minimum=1.5)),
            InputCode.SHAPE,
            "rule.interest",
            (),
            "from 0 to 1",
        ),
        (
            RuleInput(events=EventsInput(type="purchase", window=WindowInput(last_days=0), at_least=1)),
            InputCode.SHAPE,
            "rule.events.window.lastDays",
            (),
            "a window is 1 to",
        ),
        (
            RuleInput(events=EventsInput(type="purchase", window=WindowInput(), at_least=1)),
            InputCode.SHAPE,
            "rule.events.window",
            (),
            "set exactly one of lastDays, dates",
        ),
        (
            RuleInput(
                events=EventsInput(
                    type="purchase",
                    window=WindowInput(dates=DateRangeInput(start=date(2026, 2, 1), end=date(2026, 1, 1))),
                    at_least=1,
                )
            ),
            InputCode.SHAPE,
            "rule.events.window.dates",
            (),
            "starts on or before its end",
        ),
        (
            RuleInput(events=EventsInput(type="purchase", window=WindowInput(last_days=7))),
            InputCode.SHAPE,
            "rule.events",
            (),
            "at least or at most",
        ),
        (
            RuleInput(bucket=BucketInput(salt="s", buckets=10, lower=5, upper=5)),
            InputCode.SHAPE,
            "rule.bucket",
            (),
            "not empty",
        ),
    ],
)
def test_a_shape_the_ast_refuses_names_the_input_field(
    sent: RuleInput, code: InputCode, field: str, path: tuple[int, ...], words: str
) -> None:
    with pytest.raises(RuleInputError) as raised:
        rule_from_input(sent)
    assert (raised.value.code, raised.value.field, raised.value.path) == (code, field, path)
    assert words in raised.value.message


def test_nesting_past_the_bound_is_refused_before_going_deeper() -> None:
    sent = RuleInput(exists="region")
    for _ in range(5_000):
        sent = RuleInput(negated=sent)
    with pytest.raises(RuleInputError) as raised:
        rule_from_input(sent)
    assert raised.value.code == InputCode.TOO_DEEP
    assert raised.value.field == "rule" + ".not" * MAX_DEPTH
    assert raised.value.path == (0,) * MAX_DEPTH


def test_a_problem_in_an_input_rule_is_named_by_its_input_field() -> None:
    rule = rule_from_input(
        RuleInput(
            any_of=[
                RuleInput(exists="region"),
                RuleInput(negated=RuleInput(interest=InterestInput(topic="medical-health", minimum=0.1))),
            ]
        )
    )
    [problem] = validate(rule, taxonomy=load_taxonomy(), segments={})
    answered = from_problem(problem, field=input_field(rule, problem.path))
    assert (answered.code, answered.field, answered.path, answered.line) == (
        "SENSITIVE_TOPIC",
        "rule.or.1.not.interest",
        [1, 0],
        None,
    )


def test_a_problem_in_a_text_rule_is_named_by_its_line_and_column() -> None:
    rule, locations = parse_located("exists(region)\n  and `no such thing` > 1")
    [problem] = validate(rule, taxonomy=load_taxonomy(), segments={})
    answered = from_problem(problem, locations=locations)
    assert (answered.code, answered.line, answered.column, answered.path, answered.field) == (
        "UNKNOWN_FEATURE",
        2,
        7,
        [1],
        None,
    )


def test_syntax_and_input_errors_answer_in_the_same_shape() -> None:
    with pytest.raises(RuleSyntaxError) as syntax:
        parse("exists(region) and")
    assert from_syntax_error(syntax.value) == RuleProblemType(
        code="SYNTAX",
        message="expected a rule, found the end of the rule",
        line=1,
        column=19,
        path=None,
        field=None,
    )
    with pytest.raises(RuleInputError) as shape:
        rule_from_input(RuleInput(all_of=[RuleInput(exists="a")]))
    assert from_input_error(shape.value) == RuleProblemType(
        code="SHAPE", message="'and' joins at least two rules", line=None, column=None, path=[], field="rule.and"
    )


# Through GraphQL itself: the oneOf shape is enforced before a resolver sees the input.


@strawberry.type
class _Query:
    @strawberry.field
    def rule_text(self, rule: RuleInput) -> str:
        return render(rule_from_input(rule))


SCHEMA = strawberry.Schema(_Query)
QUERY = "query($rule: RuleInput!) { ruleText(rule: $rule) }"


def run(rule: dict[str, AnyValue]) -> tuple[AnyValue, list[str]]:
    result = SCHEMA.execute_sync(QUERY, variable_values={"rule": rule})
    return result.data, [error.message for error in result.errors or []]


def test_a_rule_sent_over_graphql_reads_as_its_text() -> None:
    data, errors = run(
        {
            "and": [
                {"compare": {"feature": "purchases_90d", "op": "GE", "value": {"integer": 2}}},
                {"compare": {"feature": "revenue_90d", "op": "GT", "value": {"number": 10}}},
                {"in": {"feature": "lifecycle", "values": [{"text": "active"}, {"text": "new"}]}},
                {"not": {"inSegment": "churned"}},
                {"events": {"type": "page_view", "channel": "web", "atMost": 3, "window": {"lastDays": 7}}},
                {
                    "events": {
                        "type": "purchase",
                        "atLeast": 1,
                        "window": {"dates": {"from": "2026-01-01", "to": "2026-03-31"}},
                    }
                },
                {"interest": {"topic": "sports", "minimum": 0.2, "top": 3}},
                {"bucket": {"salt": "holdout-2027", "buckets": 100, "lower": 10, "upper": 20}},
                {
                    "or": [
                        {"exists": "region"},
                        {"compare": {"feature": "bot_like", "op": "EQ", "value": {"flag": False}}},
                    ]
                },
            ]
        }
    )
    assert errors == []
    assert data == {
        "ruleText": 'purchases_90d >= 2 and revenue_90d > 10.0 and lifecycle in ("active", "new") '
        'and not in_segment("churned") and events("page_view", channel="web") <= 3 within 7 days '
        'and events("purchase") >= 1 from 2026-01-01 to 2026-03-31 and interest("sports", top=3) >= 0.2 '
        'and bucket("holdout-2027", 100) between 10 and 19 and (exists(region) or bot_like = false)'
    }


@pytest.mark.parametrize(
    "rule",
    [
        {"exists": "region", "inSegment": "churned"},
        {},
        {"compare": {"feature": "x", "op": "EQ", "value": {"integer": 1, "text": "a"}}},
        {"events": {"type": "purchase", "atLeast": 1, "window": {"lastDays": 7, "dates": None}}},
    ],
)
def test_graphql_refuses_an_input_that_sets_other_than_one_field(rule: dict[str, AnyValue]) -> None:
    data, errors = run(rule)
    assert data is None
    assert len(errors) == 1
