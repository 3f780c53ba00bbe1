"""Saving a rule checks what it names: each problem has a code, the node it is at (and so a line
and a column when the rule was text), and a message that names catalogue words only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings

from schema.segments.rule_input import InputCode
from server.segments.catalogue import CHANNELS, EVENT_TYPES, FEATURES
from server.segments.dsl import SyntaxCode, parse, parse_located
from server.segments.paths import Position
from server.segments.rules import (
    MAX_DEPTH,
    DateRange,
    EventWindow,
    Exists,
    InSegment,
    Not,
    RandomBucket,
    Rule,
)
from server.segments.timing import time_dependent
from server.segments.validation import ProblemCode, RuleProblem, locate, validate
from server.taxonomy.taxonomy import load_taxonomy
from tests.segments.rule_strategies import rules

TAXONOMY = load_taxonomy()
TOPICS = tuple(sorted(TAXONOMY.ids - TAXONOMY.sensitive_ids))
SEGMENTS: Mapping[str, frozenset[str]] = {
    "churned": frozenset(),
    "high-value": frozenset(),
    "lapsed-buyers": frozenset({"churned"}),
    "win-back": frozenset({"lapsed-buyers", "high-value"}),
}
PASTED = "ana.pii@example.org"


def problems_in(text: str, *, name: str | None = None) -> list[tuple[ProblemCode, Position | None, str]]:
    rule, locations = parse_located(text)
    return [
        (problem.code, locate(problem, locations), problem.message)
        for problem in validate(rule, taxonomy=TAXONOMY, segments=SEGMENTS, name=name)
    ]


@settings(max_examples=300, deadline=None)
@given(rules(TOPICS, tuple(SEGMENTS)))
def test_rules_drawn_from_the_catalogue_are_valid(rule: Rule) -> None:
    assert validate(rule, taxonomy=TAXONOMY, segments=SEGMENTS, name="new-segment") == []


@pytest.mark.parametrize(
    ("text", "code", "position", "words"),
    [
        ("purchase_90d >= 2", ProblemCode.UNKNOWN_FEATURE, (1, 1), "did you mean purchases_90d?"),
        ("events_7d > 1 and not exists(regio)", ProblemCode.UNKNOWN_FEATURE, (1, 23), "did you mean region?"),
        ("`lifetime value` between 1 and 2", ProblemCode.UNKNOWN_FEATURE, (1, 1), "unknown feature"),
        ('nothing_like_it in ("a")', ProblemCode.UNKNOWN_FEATURE, (1, 1), "unknown feature"),
        ('purchases_90d >= "2"', ProblemCode.WRONG_TYPE, (1, 1), "the value is not a whole number"),
        ("purchases_90d >= 2.5", ProblemCode.WRONG_TYPE, (1, 1), "not a whole number, as purchases_90d is"),
        ("revenue_90d >= true", ProblemCode.WRONG_TYPE, (1, 1), "not a number"),
        ("bot_like = 1", ProblemCode.WRONG_TYPE, (1, 1), "not a flag"),
        ('lifecycle > "new"', ProblemCode.WRONG_TYPE, (1, 1), "compared with = or != only"),
        ("bot_like >= true", ProblemCode.WRONG_TYPE, (1, 1), "compared with = or != only"),
        ("region between 1 and 2", ProblemCode.WRONG_TYPE, (1, 1), "'between' is for numbers"),
        ("events_7d between 1.5 and 2", ProblemCode.WRONG_TYPE, (1, 1), "the low end is not a whole number"),
        ('age_band in ("18-24", 30)', ProblemCode.WRONG_TYPE, (1, 1), "value 2 of 'in' is not a text"),
        ('lifecycle = "dormant"', ProblemCode.UNKNOWN_VALUE, (1, 1), "new, active, at_risk, churned"),
        ('value_tier in ("high", "vip")', ProblemCode.UNKNOWN_VALUE, (1, 1), "value 2 of 'in' is not one of"),
        ('region = "Île-de-France"', ProblemCode.UNKNOWN_VALUE, (1, 1), "a region code such as FR or FR-IDF"),
        ('interest("sport") >= 0.5', ProblemCode.UNKNOWN_TOPIC, (1, 1), "did you mean sports?"),
        ('exists(region) or interest("medical-health") >= 0.1', ProblemCode.SENSITIVE_TOPIC, (1, 19), "Art. 9"),
        (
            'interest("news-and-politics/politics/elections") >= 0.1',
            ProblemCode.SENSITIVE_TOPIC,
            (1, 1),
            "news-and-politics/politics/elections is a special category",
        ),
        ('events("buy") >= 1 within 7 days', ProblemCode.UNKNOWN_EVENT_TYPE, (1, 1), "purchase"),
        ('events("purchase", channel="tv") >= 1 within 7 days', ProblemCode.UNKNOWN_CHANNEL, (1, 1), "web, app"),
        ('in_segment("churnd")', ProblemCode.UNKNOWN_SEGMENT, (1, 1), "did you mean churned?"),
    ],
)
def test_each_problem_has_its_code_and_place(
    text: str, code: ProblemCode, position: tuple[int, int], words: str
) -> None:
    found = problems_in(text)
    assert [(found_code, at) for found_code, at, _ in found] == [(code, position)]
    assert words in found[0][2]


def test_every_problem_of_a_rule_is_listed_in_the_order_written() -> None:
    text = (
        'purchase_90d >= 2\nand (lifecycle = "dormant" or interest("nope") >= 0.2)\n'
        'and events("buy") >= 1 within 7 days'
    )
    assert [(code, at) for code, at, _ in problems_in(text)] == [
        (ProblemCode.UNKNOWN_FEATURE, (1, 1)),
        (ProblemCode.UNKNOWN_VALUE, (2, 6)),
        (ProblemCode.UNKNOWN_TOPIC, (2, 31)),
        (ProblemCode.UNKNOWN_EVENT_TYPE, (3, 5)),
    ]


def test_paths_follow_the_children_of_each_node() -> None:
    rule = parse("exists(region) and not (exists(age_band) or exists(nope))")
    [problem] = validate(rule, taxonomy=TAXONOMY, segments=SEGMENTS)
    assert problem == RuleProblem(ProblemCode.UNKNOWN_FEATURE, problem.message, (1, 0, 1))


def test_a_segment_naming_itself_is_a_cycle() -> None:
    found = problems_in('exists(region) and in_segment("win-back")', name="win-back")
    assert [(code, at) for code, at, _ in found] == [(ProblemCode.CYCLE, (1, 20))]
    assert "win-back -> win-back" in found[0][2]


def test_a_new_segment_naming_itself_is_a_cycle_not_an_unknown_segment() -> None:
    found = problems_in('in_segment("brand-new")', name="brand-new")
    assert [code for code, _, _ in found] == [ProblemCode.CYCLE]


def test_a_direct_cycle_names_both_segments() -> None:
    found = problems_in('in_segment("lapsed-buyers")', name="churned")
    assert [(code, message) for code, _, message in found] == [
        (ProblemCode.CYCLE, "in_segment makes a cycle: churned -> lapsed-buyers -> churned")
    ]


def test_an_indirect_cycle_names_the_whole_path() -> None:
    found = problems_in('exists(region) and not in_segment("win-back")', name="churned")
    assert [(code, at, message) for code, at, message in found] == [
        (ProblemCode.CYCLE, (1, 24), "in_segment makes a cycle: churned -> win-back -> lapsed-buyers -> churned")
    ]


def test_sharing_a_dependency_is_not_a_cycle() -> None:
    assert problems_in('in_segment("win-back") and in_segment("churned")', name="reactivated") == []
    assert problems_in('in_segment("lapsed-buyers") or in_segment("churned")', name="win-back") == []


def test_without_a_name_no_cycle_can_be_made() -> None:
    assert problems_in('in_segment("win-back")') == []


def test_a_tree_deeper_than_any_text_is_refused_without_recursing() -> None:
    deep: Rule = Exists("region")
    for _ in range(20_000):
        deep = Not(deep)
    [problem] = validate(deep, taxonomy=TAXONOMY, segments=SEGMENTS)
    assert problem.code == ProblemCode.TOO_DEEP
    assert problem.path == (0,) * MAX_DEPTH
    assert time_dependent(deep) is False


def test_messages_never_repeat_what_the_rule_holds() -> None:
    text = (
        f'`{PASTED}` > 1 or region = "{PASTED}" or age_band = "{PASTED}" or interest("{PASTED}") >= 0.1 '
        f'or events("{PASTED}", channel="{PASTED}") >= 1 within 7 days or in_segment("{PASTED}") '
        f'or lifecycle in ("{PASTED}") or purchases_90d = "{PASTED}"'
    )
    found = problems_in(text, name="new-segment")
    assert len(found) == 9
    assert all(PASTED not in message and "ana" not in message for _, _, message in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("purchases_90d >= 2", True),
        ("days_since_last_purchase > 30", True),
        ('lifecycle = "churned"', True),
        ("exists(days_since_last_event)", True),
        ('interest("sports") >= 0.5', True),
        ('events("purchase") >= 1 within 30 days', True),
        ('region = "FR" and not events("purchase") >= 1 within 30 days', True),
        ('region = "FR"', False),
        ('age_band in ("18-24", "25-34")', False),
        ('value_tier = "high"', True),  # a build's new cut points move people with no event of theirs
        ("device_count between 2 and 5 and exists(region)", False),
        ('events("purchase") >= 1 from 2026-01-01 to 2026-01-31', False),
        ('bucket("holdout-2027", 100) < 10', False),
        ('in_segment("churned")', False),
        ("nothing_known > 1", True),
    ],
)
def test_time_dependent_rules_are_those_time_alone_can_change(text: str, expected: bool) -> None:
    assert time_dependent(parse(text)) is expected


def test_only_relative_windows_are_time_dependent() -> None:
    dated = EventWindow("purchase", DateRange(date(2026, 1, 1), date(2026, 12, 31)), at_least=1)
    assert time_dependent(dated) is False
    assert time_dependent(Not(dated)) is False
    assert time_dependent(RandomBucket("salt", 10, 0, 1)) is False
    assert time_dependent(InSegment("churned")) is False


DOCS = Path(__file__).resolve().parents[2] / "docs" / "segments.md"


def test_the_docs_name_every_feature_event_type_and_channel() -> None:
    """An unknown feature's message sends the marketer to docs/segments.md: it must hold them all."""
    text = DOCS.read_text(encoding="utf-8")
    assert [name for name in (*FEATURES, *EVENT_TYPES, *CHANNELS) if f"`{name}`" not in text] == []


def test_the_docs_list_every_problem_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.MULTILINE))
    assert documented == {*ProblemCode, *SyntaxCode, *InputCode}
