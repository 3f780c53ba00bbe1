"""Why a rule was refused, as GraphQL data: one ``RuleProblem`` per problem, with where it is.

Three sources, one shape: text that does not parse (``RuleSyntaxError``: a line and a column),
an input no rule can be built from (``RuleInputError``: an input field and a node path), and a
well-shaped rule that validation refuses (``RuleProblem``: a node path, plus a line and a column
when the rule came from text, or an input field when it came from a ``RuleInput``). The messages
are the domain's, which never repeat what the rule holds.
"""

from __future__ import annotations

import strawberry

from schema.permissions import requires
from schema.segments.rule_input import RuleInputError
from server.auth.principal import Role
from server.segments.dsl import RuleSyntaxError
from server.segments.paths import Locations
from server.segments.validation import RuleProblem, locate

__all__ = ["RULE_READERS", "RuleProblemType", "from_input_error", "from_problem", "from_syntax_error"]

RULE_READERS = requires(Role.MARKETER, Role.ADMIN)

_POSITION = "1-based, in the rule's text; null when the rule was not given as text."


@strawberry.type(
    name="RuleProblem", description="Why a segment's rule was refused: a code, where, and which rule of the language."
)
class RuleProblemType:
    code: str = strawberry.field(extensions=RULE_READERS)
    message: str = strawberry.field(extensions=RULE_READERS)
    line: int | None = strawberry.field(extensions=RULE_READERS, description=_POSITION)
    column: int | None = strawberry.field(extensions=RULE_READERS, description=_POSITION)
    path: list[int] | None = strawberry.field(
        extensions=RULE_READERS,
        description="The node: child indices from the root ([] is the root, [1, 0] the first part of its second). "
        "Null when the text did not parse.",
    )
    field: str | None = strawberry.field(
        extensions=RULE_READERS,
        description="The input field, e.g. rule.and.1.compare, when the rule came as a RuleInput.",
    )


def from_problem(
    problem: RuleProblem, *, locations: Locations | None = None, field: str | None = None
) -> RuleProblemType:
    """``locations`` when the rule came from text (``dsl.parse_located``), ``field`` (``rule_input.input_field``)
    when it came as an input."""
    position = None if locations is None else locate(problem, locations)
    return RuleProblemType(
        code=problem.code,
        message=problem.message,
        line=None if position is None else position.line,
        column=None if position is None else position.column,
        path=list(problem.path),
        field=field,
    )


def from_syntax_error(error: RuleSyntaxError) -> RuleProblemType:
    return RuleProblemType(
        code=error.code, message=error.message, line=error.line, column=error.column, path=None, field=None
    )


def from_input_error(error: RuleInputError) -> RuleProblemType:
    return RuleProblemType(
        code=error.code, message=error.message, line=None, column=None, path=list(error.path), field=error.field
    )
