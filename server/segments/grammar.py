"""The grammar of the rule DSL (LALR, for ``lark``) and the words its error messages use.

Precedence, loosest first: ``or``, ``and``, ``not``, then a comparison or a parenthesised rule.
A comparison is a leaf: ``purchases_90d >= 2``, ``revenue_90d between 10 and 200``,
``lifecycle in ("active", "new")``, ``exists(region)``, ``interest("sports", top=3) >= 0.2``,
``events("purchase", channel="web") >= 2 within 90 days``, ``in_segment("churned")``,
``bucket("holdout-2027", 100) < 10``. ``docs/segments.md`` is the reference.

A feature is a bare name, or any text between backticks when it is not one (or is a keyword).
Keywords are lowercase; the lexer is contextual, so a keyword where none can stand reads as a
name, but the canonical text quotes every keyword used as a name all the same. LALR keeps parsing
linear in the text and free of recursion: a pathological input costs time in proportion to its
length and never the Python stack.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["GRAMMAR", "KEYWORDS", "NAME", "TERMINAL_WORDS"]

_GRAMMAR_TEMPLATE: Final = r"""
start: _rule

_rule: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: NOT negation
         | _primary
_primary: group
        | compare
        | between
        | one_of
        | exists
        | interest
        | events
        | in_segment
        | bucket

!group: _LPAR _rule _RPAR
compare: feature op literal
between: feature _BETWEEN number _AND number
one_of: feature _IN _LPAR literal (_COMMA literal)* _RPAR
exists: EXISTS _LPAR feature _RPAR
interest: INTEREST _LPAR text [_COMMA _TOP EQ number] _RPAR op number
events: EVENTS _LPAR text [_COMMA _CHANNEL EQ text] _RPAR count window
in_segment: IN_SEGMENT _LPAR text _RPAR
bucket: BUCKET _LPAR text _COMMA number _RPAR count

count: op number
     | _BETWEEN number _AND number -> count_between
window: _WITHIN number (_DAYS | _DAY) -> last_days
      | _FROM day _TO day -> date_range

feature: NAME | QUOTED_NAME
literal: number | text | TRUE | FALSE
number: NUMBER
text: TEXT
day: DATE
op: EQ | NE | LT | LE | GT | GE

_OR: "or"
_AND: "and"
NOT: "not"
_BETWEEN: "between"
_IN: "in"
EXISTS: "exists"
INTEREST: "interest"
_TOP: "top"
EVENTS: "events"
_CHANNEL: "channel"
_WITHIN: "within"
_DAYS: "days"
_DAY: "day"
_FROM: "from"
_TO: "to"
IN_SEGMENT: "in_segment"
BUCKET: "bucket"
TRUE: "true"
FALSE: "false"

EQ: "="
NE: "!="
LT: "<"
LE: "<="
GT: ">"
GE: ">="
_LPAR: "("
_RPAR: ")"
_COMMA: ","

NAME: /<name>/
QUOTED_NAME: /`(?:[^`\\\x00-\x1f]|\\[^\x00-\x1f])*`/
TEXT: /"(?:[^"\\\x00-\x1f]|\\[^\x00-\x1f])*"/
DATE: /[0-9]{4}-[0-9]{2}-[0-9]{2}/
NUMBER: /-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/

%ignore /[ \t\r\n]+/
"""

NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A bare feature name; any other name is written between backticks."""
GRAMMAR: Final = _GRAMMAR_TEMPLATE.replace("<name>", NAME.pattern)
KEYWORDS: Final = frozenset(
    word for word in re.findall(r'^_?[A-Z_]+: "([^"]+)"$', GRAMMAR, flags=re.MULTILINE) if NAME.fullmatch(word)
)
"""Words the lexer reads as keywords, never as a bare feature name: a feature so named is quoted."""

TERMINAL_WORDS: Final = {
    "$END": "the end of the rule",
    "NAME": "a feature name",
    "QUOTED_NAME": "a feature name",
    "TEXT": 'a quoted text ("...")',
    "NUMBER": "a number",
    "DATE": "a date (YYYY-MM-DD)",
}
"""How an error message names a pattern; a keyword or a sign is named by itself (``'and'``, ``'('``)."""
