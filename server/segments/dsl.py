"""The rule DSL: text to AST (``parse``) and AST to its one canonical text (``render``, from
``server.segments.canonical``), with ``parse(render(rule)) == rule`` for every well-shaped rule.
The grammar is in ``server.segments.grammar``; ``docs/segments.md`` is the reference.

Text that is not a rule raises ``RuleSyntaxError`` and nothing else: not ``RecursionError`` (the
parser is LALR, the tree is built bottom-up and refused past ``MAX_DEPTH``), not a lark error,
not a ``RuleShapeError`` (turned into a syntax error at the node's position). Its message says
what was expected at a line and column and never quotes the text, which may hold anything a
marketer pasted.

Exceptions::

    ValueError
    ├── RuleSyntaxError   the text is not a rule (code SYNTAX), too long (TOO_LONG) or too deep (TOO_DEEP)
    └── RuleShapeError    (from ``render``) a rule that no text can hold: too deep, a number not finite
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from typing import Final, Generic, TypeVar, cast

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from server.segments.canonical import render
from server.segments.grammar import GRAMMAR, TERMINAL_WORDS
from server.segments.paths import Locations, NodePath, Position
from server.segments.quoting import BACKTICK, TextLiteralError, unquote
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

__all__ = ["MAX_TEXT_LENGTH", "RuleSyntaxError", "SyntaxCode", "parse", "parse_located", "render"]

MAX_TEXT_LENGTH: Final = 10_000
"""Characters in a rule's text: far above any audience a person writes, and a bound on parse time."""

_RULE_STARTS: Final = frozenset(
    {"_LPAR", "NOT", "NAME", "QUOTED_NAME", "EXISTS", "INTEREST", "EVENTS", "IN_SEGMENT", "BUCKET"}
)
_SIGNS: Final = frozenset({"EQ", "NE", "LT", "LE", "GT", "GE"})


class SyntaxCode(enum.StrEnum):
    SYNTAX = "SYNTAX"
    TOO_LONG = "TOO_LONG"
    TOO_DEEP = "TOO_DEEP"


class RuleSyntaxError(ValueError):
    """Text that is not a rule: ``code``, where (``line``, ``column``, 1-based) and what was expected."""

    def __init__(self, code: SyntaxCode, message: str, at: Position) -> None:
        super().__init__(f"line {at.line}, column {at.column}: {message}")
        self.code = code
        self.message = message
        self.line = at.line
        self.column = at.column


def parse(text: str) -> Rule:
    return parse_located(text)[0]


def parse_located(text: str) -> tuple[Rule, Locations]:
    """The rule and where each of its nodes starts in ``text``, by node path (``server.segments.paths``)."""
    if len(text) > MAX_TEXT_LENGTH:
        raise RuleSyntaxError(
            SyntaxCode.TOO_LONG, f"a rule is at most {MAX_TEXT_LENGTH} characters", _position_of(text, MAX_TEXT_LENGTH)
        )
    try:
        root = cast(_Node, _parser().parse(text))
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return root.rule, _locations(root)


# Reading.

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _At(Generic[T]):
    """A value read from the text and where it was written."""

    value: T
    at: Position


@dataclass(frozen=True, slots=True)
class _Node:
    rule: Rule
    at: Position
    depth: int
    parts: tuple[_Node, ...] = ()


@dataclass(frozen=True, slots=True)
class _Count:
    """``op n`` (``op`` set) or ``between n and high``."""

    op: _At[CompareOp] | None
    low: _At[int]
    high: _At[int] | None = None


def _position(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


def _refuse(message: str, at: Position, code: SyntaxCode = SyntaxCode.SYNTAX) -> RuleSyntaxError:
    return RuleSyntaxError(code, message, at)


def _shaped(build: Callable[[], T], at: Position) -> T:
    """A node or window built from what was read; a shape it cannot hold is a syntax error there."""
    try:
        return build()
    except RuleShapeError as error:
        raise _refuse(str(error), at) from None


def _whole(number: _At[int | float], what: str) -> int:
    if not isinstance(number.value, int):
        raise _refuse(f"{what} is a whole number", number.at)
    return number.value


def _leaf(build: Callable[[], Rule], at: Position) -> _Node:
    return _Node(_shaped(build, at), at, 1)


def _branch(rule: Rule, at: Position, parts: tuple[_Node, ...]) -> _Node:
    depth = 1 + max(part.depth for part in parts)
    if depth > MAX_DEPTH:
        raise _refuse(f"a rule nests at most {MAX_DEPTH} levels deep (and, or, not)", at, SyntaxCode.TOO_DEEP)
    return _Node(rule, at, depth, parts)


@v_args(inline=True)
class _Builder(Transformer[Token, _Node]):
    """Called by the LALR parser as it reduces, bottom-up: no tree is built, nothing recurses."""

    def start(self, root: _Node) -> _Node:
        return root

    def disjunction(self, *parts: _Node) -> _Node:
        return _branch(Any(tuple(part.rule for part in parts)), parts[0].at, parts)

    def conjunction(self, *parts: _Node) -> _Node:
        return _branch(All(tuple(part.rule for part in parts)), parts[0].at, parts)

    def negation(self, keyword: Token, part: _Node) -> _Node:
        return _branch(Not(part.rule), _position(keyword), (part,))

    def group(self, opening: Token, inner: _Node, _closing: Token) -> _Node:
        """A rule in parentheses starts at its opening one."""
        return replace(inner, at=_position(opening))

    def compare(self, feature: _At[str], op: _At[CompareOp], value: _At[Literal]) -> _Node:
        return _leaf(lambda: Compare(feature.value, op.value, value.value), feature.at)

    def between(self, feature: _At[str], low: _At[int | float], high: _At[int | float]) -> _Node:
        return _leaf(lambda: Between(feature.value, low.value, high.value), feature.at)

    def one_of(self, feature: _At[str], *values: _At[Literal]) -> _Node:
        return _leaf(lambda: OneOf(feature.value, tuple(value.value for value in values)), feature.at)

    def exists(self, keyword: Token, feature: _At[str]) -> _Node:
        return _leaf(lambda: Exists(feature.value), _position(keyword))

    def interest(
        self,
        keyword: Token,
        topic: _At[str],
        _equals: Token | None,
        top: _At[int | float] | None,
        op: _At[CompareOp],
        minimum: _At[int | float],
    ) -> _Node:
        if op.value is not CompareOp.GE:
            raise _refuse("an interest score is compared with '>='", op.at)
        shown_top = None if top is None else _whole(top, "'top'")
        score = _shaped(lambda: _score(minimum.value), minimum.at)
        return _leaf(lambda: InterestScore(topic.value, score, shown_top), _position(keyword))

    def events(
        self,
        keyword: Token,
        event_type: _At[str],
        _equals: Token | None,
        channel: _At[str] | None,
        count: _Count,
        window: _At[Window],
    ) -> _Node:
        at_least, at_most = _event_bounds(count)
        return _leaf(
            lambda: EventWindow(
                event_type.value, window.value, at_least, at_most, None if channel is None else channel.value
            ),
            _position(keyword),
        )

    def in_segment(self, keyword: Token, segment: _At[str]) -> _Node:
        return _leaf(lambda: InSegment(segment.value), _position(keyword))

    def bucket(self, keyword: Token, salt: _At[str], buckets: _At[int | float], count: _Count) -> _Node:
        total = _whole(buckets, "a bucket count")
        lower, upper = _bucket_range(count, total)
        return _leaf(lambda: RandomBucket(salt.value, total, lower, upper), _position(keyword))

    def count(self, op: _At[CompareOp], number: _At[int | float]) -> _Count:
        return _Count(op, _At(_whole(number, "a count"), number.at))

    def count_between(self, low: _At[int | float], high: _At[int | float]) -> _Count:
        return _Count(None, _At(_whole(low, "a count"), low.at), _At(_whole(high, "a count"), high.at))

    def last_days(self, days: _At[int | float]) -> _At[Window]:
        count = _whole(days, "a number of days")
        return _At(_shaped(lambda: LastDays(count), days.at), days.at)

    def date_range(self, start: _At[date], end: _At[date]) -> _At[Window]:
        return _At(_shaped(lambda: DateRange(start.value, end.value), start.at), start.at)

    def feature(self, token: Token) -> _At[str]:
        name = _text(token) if token.type == "QUOTED_NAME" else str(token)
        return _At(name, _position(token))

    def literal(self, item: _At[int | float] | _At[str] | Token) -> _At[Literal]:
        if isinstance(item, Token):
            return _At(item.type == "TRUE", _position(item))
        return cast(_At[Literal], item)

    def number(self, token: Token) -> _At[int | float]:
        return _At(_number(token), _position(token))

    def text(self, token: Token) -> _At[str]:
        return _At(_text(token), _position(token))

    def day(self, token: Token) -> _At[date]:
        try:
            return _At(date.fromisoformat(str(token)), _position(token))
        except ValueError:
            raise _refuse("a date is a calendar day written YYYY-MM-DD", _position(token)) from None

    def op(self, token: Token) -> _At[CompareOp]:
        return _At(CompareOp(str(token)), _position(token))


def _number(token: Token) -> int | float:
    written = str(token)
    if any(mark in written for mark in ".eE"):
        value = float(written)
        if not math.isfinite(value):
            raise _refuse("a number is too large", _position(token))
        return value
    try:
        return int(written)
    except ValueError:  # past Python's limit on the digits of an int read from text
        raise _refuse("a number has too many digits", _position(token)) from None


def _score(minimum: int | float) -> float:
    try:
        return float(minimum)
    except OverflowError:
        raise RuleShapeError("an interest score is compared with a value from 0 to 1") from None


def _text(token: Token) -> str:
    try:
        return unquote(str(token))
    except TextLiteralError as error:
        raise _refuse(str(error), _position(token)) from None


def _event_bounds(count: _Count) -> tuple[int | None, int | None]:
    """``>= n``, ``> n``, ``<= n``, ``< n``, ``= n`` or ``between a and b`` as (at least, at most)."""
    low = count.low.value
    if count.op is None:
        return low, None if count.high is None else count.high.value
    match count.op.value:
        case CompareOp.GE:
            return low, None
        case CompareOp.GT:
            return low + 1, None
        case CompareOp.LE:
            return None, low
        case CompareOp.LT:
            return None, low - 1
        case CompareOp.EQ:
            return low, low
        case CompareOp.NE:
            raise _refuse("an event count is compared with >=, >, <=, <, = or between", count.op.at)


def _bucket_range(count: _Count, buckets: int) -> tuple[int, int]:
    """The written bound as the half-open range ``lower <= bucket < upper`` the AST holds."""
    low = count.low.value
    if count.op is None:
        return low, (low if count.high is None else count.high.value) + 1
    match count.op.value:
        case CompareOp.LT:
            return 0, low
        case CompareOp.LE:
            return 0, low + 1
        case CompareOp.GE:
            return low, buckets
        case CompareOp.GT:
            return low + 1, buckets
        case CompareOp.EQ:
            return low, low + 1
        case CompareOp.NE:
            raise _refuse("a bucket is compared with <, <=, >=, >, = or between", count.op.at)


@cache
def _parser() -> Lark:
    """Built on first use, not at import: compiling the tables is cheap but not free."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", transformer=_Builder(), maybe_placeholders=True)


def _locations(root: _Node) -> dict[NodePath, Position]:
    found: dict[NodePath, Position] = {}
    stack: list[tuple[NodePath, _Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        found[path] = node.at
        stack.extend(((*path, index), part) for index, part in enumerate(node.parts))
    return found


# Errors.


def _position_of(text: str, index: int) -> Position:
    before = text[:index]
    line = before.count("\n") + 1
    return Position(line, index - (before.rfind("\n") + 1) + 1)


def _syntax_error(error: UnexpectedInput, text: str) -> RuleSyntaxError:
    expected = _expected(error)
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            return _refuse(f"expected {expected}, found the end of the rule", _position_of(text, len(text)))
        found = _word(error.token.type)
        return _refuse(f"expected {expected}, found {found}", Position(error.line, error.column))
    if isinstance(error, UnexpectedCharacters):
        at = Position(error.line, error.column)
        if text[error.pos_in_stream or 0] in f'"{BACKTICK}':
            return _refuse("a quoted text or name is not closed on its line (a line break in one is written \\n)", at)
        return _refuse(f"expected {expected}; nothing in the rule language starts with the character here", at)
    return _refuse("the rule is not complete", _position_of(text, len(text)))


def _expected(error: UnexpectedInput) -> str:
    parser = getattr(error, "interactive_parser", None)
    names: set[str] = set(parser.accepts()) if parser is not None else set()
    if not names:
        names = set(getattr(error, "expected", None) or getattr(error, "allowed", None) or ())
    words: set[str] = set()
    if names >= _RULE_STARTS:
        names -= _RULE_STARTS
        words.add("a rule")
    if names >= _SIGNS:
        names -= _SIGNS
        words.add("a comparison (=, !=, <, <=, >, >=)")
    words.update(_word(name) for name in names)
    ordered = sorted(words)
    if not ordered:
        return "nothing more"
    return ordered[0] if len(ordered) == 1 else f"{', '.join(ordered[:-1])} or {ordered[-1]}"


@cache
def _word(terminal: str) -> str:
    if terminal in TERMINAL_WORDS:
        return TERMINAL_WORDS[terminal]
    pattern = next((t.pattern for t in _parser().terminals if t.name == terminal), None)
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else "something else"
