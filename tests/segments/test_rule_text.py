"""The rule DSL: what each construct reads as, the canonical text it is written back as, and the
promise that any text whatsoever either reads as a rule or is refused with a RuleSyntaxError
that says where, never what was written."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.segments.dsl import MAX_TEXT_LENGTH, RuleSyntaxError, SyntaxCode, parse, parse_located, render
from server.segments.grammar import KEYWORDS
from server.segments.paths import Position
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
    Not,
    OneOf,
    RandomBucket,
    Rule,
    RuleShapeError,
)
from server.taxonomy.taxonomy import load_taxonomy
from tests.segments.rule_strategies import rules

TOPICS = tuple(sorted(load_taxonomy().ids - load_taxonomy().sensitive_ids))
SEGMENTS = ("churned", "high-value", "holdout")
PASTED = "ana.pii@example.org"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (
            'interest("sports/running") >= 0.6 and purchases_90d >= 2 and not in_segment("churned")',
            All(
                (
                    InterestScore("sports/running", 0.6),
                    Compare("purchases_90d", CompareOp.GE, 2),
                    Not(InSegment("churned")),
                )
            ),
        ),
        ('interest("sports", top=3) >= 0.2', InterestScore("sports", 0.2, top=3)),
        ('lifecycle in ("active", "new")', OneOf("lifecycle", ("active", "new"))),
        ("revenue_90d between 10 and 200", Between("revenue_90d", 10, 200)),
        ("revenue_90d between 9.5 and 200.25", Between("revenue_90d", 9.5, 200.25)),
        ("exists(days_since_last_purchase)", Exists("days_since_last_purchase")),
        ('region = "FR-IDF"', Compare("region", CompareOp.EQ, "FR-IDF")),
        ("bot_like = false", Compare("bot_like", CompareOp.EQ, False)),
        ("days_since_last_event != -1", Compare("days_since_last_event", CompareOp.NE, -1)),
        ('events("purchase") >= 2 within 90 days', EventWindow("purchase", LastDays(90), at_least=2)),
        ('events("purchase") > 2 within 1 day', EventWindow("purchase", LastDays(1), at_least=3)),
        (
            'events("page_view", channel="web") <= 3 within 7 days',
            EventWindow("page_view", LastDays(7), at_most=3, channel="web"),
        ),
        ('events("signup") < 1 within 30 days', EventWindow("signup", LastDays(30), at_most=0)),
        ('events("click") = 4 within 30 days', EventWindow("click", LastDays(30), at_least=4, at_most=4)),
        (
            'events("purchase") between 1 and 3 from 2026-01-01 to 2026-03-31',
            EventWindow("purchase", DateRange(date(2026, 1, 1), date(2026, 3, 31)), at_least=1, at_most=3),
        ),
        ('bucket("holdout-2027", 100) < 10', RandomBucket("holdout-2027", 100, 0, 10)),
        ('bucket("holdout-2027", 100) <= 9', RandomBucket("holdout-2027", 100, 0, 10)),
        ('bucket("holdout-2027", 100) between 10 and 19', RandomBucket("holdout-2027", 100, 10, 20)),
        ('bucket("holdout-2027", 100) >= 90', RandomBucket("holdout-2027", 100, 90, 100)),
        ('bucket("holdout-2027", 100) > 89', RandomBucket("holdout-2027", 100, 90, 100)),
        ('bucket("holdout-2027", 100) = 7', RandomBucket("holdout-2027", 100, 7, 8)),
        ("`weird feature` > 1", Compare("weird feature", CompareOp.GT, 1)),
        ("`and` = true", Compare("and", CompareOp.EQ, True)),
    ],
)
def test_each_construct_reads_as_its_node(text: str, rule: Rule) -> None:
    assert parse(text) == rule
    assert parse(render(rule)) == rule


@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
def test_a_feature_named_like_a_keyword_is_quoted_and_reads_back(keyword: str) -> None:
    rule = All((Compare(keyword, CompareOp.EQ, 1), Exists(keyword)))
    assert render(rule) == f"`{keyword}` = 1 and exists(`{keyword}`)"
    assert parse(render(rule)) == rule


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    a, b, c = (Exists(name) for name in "abc")
    assert parse("exists(a) or exists(b) and exists(c)") == Any((a, All((b, c))))
    assert parse("not exists(a) and exists(b)") == All((Not(a), b))
    assert parse("not (exists(a) and exists(b))") == Not(All((a, b)))
    assert parse("(exists(a) or exists(b)) and exists(c)") == All((Any((a, b)), c))
    assert parse("not not exists(a)") == Not(Not(a))


def test_a_group_inside_a_group_of_the_same_kind_keeps_its_shape() -> None:
    a, b, c = (Exists(name) for name in "abc")
    nested = All((All((a, b)), c))
    assert render(nested) == "(exists(a) and exists(b)) and exists(c)"
    assert parse(render(nested)) == nested
    assert parse("exists(a) and exists(b) and exists(c)") == All((a, b, c))


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (InterestScore("sports", 1), 'interest("sports") >= 1.0'),
        (Compare("revenue_90d", CompareOp.GE, 2.0), "revenue_90d >= 2.0"),
        (Compare("revenue_90d", CompareOp.GE, 1e-07), "revenue_90d >= 1e-07"),
        (
            EventWindow("purchase", LastDays(1), at_least=2, at_most=5),
            'events("purchase") between 2 and 5 within 1 day',
        ),
        (RandomBucket("s", 10, 0, 10), 'bucket("s", 10) < 10'),
        (Compare("in", CompareOp.EQ, 1), "`in` = 1"),
        (Compare("région", CompareOp.EQ, 'a "quoted" \\ back\tslash'), '`région` = "a \\"quoted\\" \\\\ back\\tslash"'),
        (InSegment("\u202ehidden\u200b"), 'in_segment("\\u202ehidden\\u200b")'),
        (InSegment("emoji 🎯"), 'in_segment("emoji 🎯")'),
    ],
)
def test_render_writes_one_canonical_text(rule: Rule, text: str) -> None:
    assert render(rule) == text
    assert parse(text) == rule


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(any_names=True))
def test_any_rule_reads_back_as_itself(rule: Rule) -> None:
    text = render(rule)
    read = parse(text)
    assert read == rule
    # repr tells an int from a float and a flag from a number, which == does not (True == 1 == 1.0).
    assert repr(read) == repr(rule)
    assert render(read) == text


@settings(max_examples=500, deadline=None)
@given(rules(TOPICS, SEGMENTS, max_leaves=20))
def test_catalogue_rules_read_back_as_themselves(rule: Rule) -> None:
    assert repr(parse(render(rule))) == repr(rule)


@settings(max_examples=200, deadline=None)
@given(rules(any_names=True))
def test_locations_name_every_node_by_its_path(rule: Rule) -> None:
    text = render(rule)
    read, locations = parse_located(text)
    lines = text.split("\n")
    for path, position in locations.items():
        node: Rule = read
        for index in path:
            node = (node.parts if isinstance(node, All | Any) else (node.part,))[index]  # type: ignore[union-attr]
        assert 1 <= position.line <= len(lines)
        assert 1 <= position.column <= len(lines[position.line - 1])
    assert len(locations) == _count_nodes(read)


def _count_nodes(rule: Rule) -> int:
    if isinstance(rule, All | Any):
        return 1 + sum(_count_nodes(part) for part in rule.parts)
    if isinstance(rule, Not):
        return 1 + _count_nodes(rule.part)
    return 1


def test_locations_point_at_each_node_across_lines() -> None:
    text = 'purchases_90d >= 2\n  and (not exists(region)\n       or events("purchase") >= 1 within 7 days)'
    rule, locations = parse_located(text)
    assert isinstance(rule, All)
    assert locations[()] == Position(1, 1)
    assert locations[(0,)] == Position(1, 1)
    assert locations[(1,)] == Position(2, 7)  # a group starts at its parenthesis
    assert locations[(1, 0)] == Position(2, 8)
    assert locations[(1, 0, 0)] == Position(2, 12)
    assert locations[(1, 1)] == Position(3, 11)


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("purchases_90d >= 2 and", 1, 23, "expected a rule, found the end of the rule"),
        ("purchases_90d >=", 1, 17, "expected 'false', 'true', a number or a quoted text"),
        ("purchases_90d ~ 2", 1, 15, "a comparison (=, !=, <, <=, >, >=)"),
        ("(exists(a)", 1, 11, "expected ')'"),
        ("exists(a)\n  exists(b)", 2, 3, "expected 'and', 'or' or the end of the rule, found 'exists'"),
        ('region = "FR', 1, 10, "not closed on its line"),
        ("", 1, 1, "expected a rule"),
        ("lifecycle in ()", 1, 15, "found ')'"),
        ("events_7d >= 2026-01-01", 1, 18, "found a number"),
    ],
)
def test_a_syntax_error_says_where_and_what_was_expected(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as raised:
        parse(text)
    assert raised.value.code == SyntaxCode.SYNTAX
    assert (raised.value.line, raised.value.column) == (line, column)
    assert words in raised.value.message
    assert str(raised.value).startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("x between 5 and 1", 1, "'between' needs its low end at most its high end"),
        ('interest("sports") >= 1.5', 1, "from 0 to 1"),
        ('interest("sports") > 0.5', 20, "compared with '>='"),
        ('interest("sports", top=0) >= 0.5', 1, "'top' is from 1 to 100"),
        ('interest("sports", top=2.5) >= 0.5', 24, "'top' is a whole number"),
        ('events("purchase") >= 1 within 0 days', 32, "a window is 1 to"),
        ('events("purchase") >= 1 within 7.5 days', 32, "a number of days is a whole number"),
        ('events("purchase") < 0 within 7 days', 1, "not negative"),
        ('events("purchase") != 2 within 7 days', 20, "an event count is compared with"),
        ('events("purchase") between 3 and 1 within 7 days', 1, "'at least' is at most its 'at most'"),
        ('events("purchase") >= 1 from 2026-03-01 to 2026-02-01', 30, "starts on or before its end"),
        ('events("purchase") >= 1 from 2026-02-30 to 2026-03-01', 30, "a calendar day"),
        ('bucket("s", 100) between 50 and 100', 1, "bucket range"),
        ('bucket("s", 1) < 1', 1, "a bucket count is 2 to"),
        ('bucket("", 10) < 1', 1, "salt is 1 to 64 characters"),
        ('bucket("s", 10) != 1', 17, "a bucket is compared with"),
        ('region = "\\q"', 10, "unknown escape"),
        ('region = "\\u12"', 10, "4 hexadecimal digits"),
        ('region = "\\ud800"', 10, "surrogate"),
        ('region = "\\U00110000"', 10, "past U+10FFFF"),
        ("revenue_90d > 1e400", 15, "too large"),
        (f"revenue_90d > {'9' * 5000}", 15, "too many digits"),
        ("x in (" + ", ".join(["1"] * 257) + ")", 1, "'in' lists 1 to 256 values"),
    ],
)
def test_a_shape_the_ast_refuses_is_a_syntax_error_at_its_place(text: str, column: int, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as raised:
        parse(text)
    assert raised.value.code == SyntaxCode.SYNTAX
    assert (raised.value.line, raised.value.column) == (1, column)
    assert words in raised.value.message


def test_text_longer_than_the_bound_is_refused_before_parsing() -> None:
    text = "exists(a) or " * (MAX_TEXT_LENGTH // 13) + "exists(b)"
    assert len(text) > MAX_TEXT_LENGTH
    with pytest.raises(RuleSyntaxError) as raised:
        parse(text)
    assert raised.value.code == SyntaxCode.TOO_LONG
    assert (raised.value.line, raised.value.column) == (1, MAX_TEXT_LENGTH + 1)


def test_nesting_past_the_bound_is_refused_at_the_node_that_crosses_it() -> None:
    assert parse("not " * (MAX_DEPTH - 1) + "exists(a)") is not None
    with pytest.raises(RuleSyntaxError) as raised:
        parse("not " * MAX_DEPTH + "exists(a)")
    assert raised.value.code == SyntaxCode.TOO_DEEP
    assert (raised.value.line, raised.value.column) == (1, 1)


def test_deep_groups_raise_a_syntax_error_never_a_recursion_error() -> None:
    groups = 600
    nested = "(exists(a) and " * groups + "exists(b)" + ")" * groups
    with pytest.raises(RuleSyntaxError) as raised:
        parse(nested)
    assert raised.value.code == SyntaxCode.TOO_DEEP
    parentheses = "(" * 4_000 + "exists(a)" + ")" * 4_000
    assert parse(parentheses) == Exists("a")
    with pytest.raises(RuleSyntaxError):
        parse("(" * 9_000)


def test_render_refuses_what_no_text_can_hold() -> None:
    deep: Rule = Exists("a")
    for _ in range(50_000):
        deep = Not(deep)
    with pytest.raises(RuleShapeError):
        render(deep)
    with pytest.raises(RuleShapeError):
        render(Compare("revenue_90d", CompareOp.GT, float("inf")))


# Whatever is written, the answer is a rule or a RuleSyntaxError, and never the text back.

_GRAMMAR_PIECES = st.sampled_from(
    [
        "and", "or", "not", "(", ")", ",", "=", "!=", "<", "<=", ">", ">=", "between", "in", "exists", "interest",
        "events", "in_segment", "bucket", "within", "days", "from", "to", "top=", "channel=", "true", "false",
        '"', "`", "\\", "\\u", "-", ".", "e", "1", "0.5", "2026-01-01", "99999", "purchases_90d", '"sports"', "\n", " ",
    ]
)  # fmt: skip


def _refused_or_read(text: str) -> None:
    refused = _refusal(text)
    if refused is not None:
        assert refused.code in set(SyntaxCode)
        assert refused.line >= 1
        assert refused.column >= 1
        assert PASTED not in str(refused)


def _refusal(text: str) -> RuleSyntaxError | None:
    """``parse``'s refusal, if any: anything else it raises fails the test."""
    try:
        parse(text)
    except RuleSyntaxError as error:
        return error
    return None


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    _refused_or_read(text)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_GRAMMAR_PIECES | st.text(max_size=3), max_size=40).map(" ".join))
def test_word_salad_of_the_language_never_raises_anything_else(text: str) -> None:
    _refused_or_read(text)


@settings(max_examples=1500, deadline=None)
@given(rules(any_names=True), st.data())
def test_mutated_rules_never_raise_anything_else(rule: Rule, data: st.DataObject) -> None:
    text = render(rule)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        cut = data.draw(st.integers(min_value=0, max_value=3))
        inserted = data.draw(st.sampled_from(["", PASTED, '"' + PASTED]) | _GRAMMAR_PIECES | st.text(max_size=2))
        text = text[:at] + inserted + text[at + cut :]
    _refused_or_read(text)


@pytest.mark.parametrize(
    "text",
    [
        f"{PASTED.replace('.', '_').replace('@', '_')} ~ 1",
        f'region = "{PASTED}" and',
        f'region = "{PASTED}',
        f"`{PASTED}` > ",
        f'in_segment("{PASTED}") in_segment("{PASTED}")',
        f'region = "{PASTED}\\x"',
    ],
)
def test_an_error_never_quotes_the_text(text: str) -> None:
    with pytest.raises(RuleSyntaxError) as raised:
        parse(text)
    assert PASTED not in str(raised.value)
    assert "ana" not in str(raised.value)
