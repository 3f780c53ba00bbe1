"""A rule as the caller gave it, the text DSL or the structured input, and where its problems are.

Exactly one form is given. Problems found when saving carry a path into the AST; for a rule given
as text, the path becomes the line and column the marketer typed, for a ``RuleInput`` the input
field (``rule.and.1.compare``).
"""

from __future__ import annotations

from dataclasses import dataclass

from schema.errors import DomainError
from schema.segments.problem_types import RuleProblemType, from_input_error, from_problem, from_syntax_error
from schema.segments.rule_input import RuleInput, RuleInputError, input_field, rule_from_input
from server.segments.definitions import SegmentError
from server.segments.dsl import RuleSyntaxError, parse_located
from server.segments.paths import Locations
from server.segments.rules import Rule

__all__ = ["GivenRule", "RuleRefused", "problems_of", "rule_of"]


@dataclass(frozen=True, slots=True)
class GivenRule:
    rule: Rule
    locations: Locations | None
    """Where each node was in the text; None for a structured input."""


class RuleRefused(Exception):
    def __init__(self, error: DomainError, problems: list[RuleProblemType]) -> None:
        super().__init__(error.message)
        self.error = error
        self.problems = problems


def rule_of(rule_text: str | None, rule: RuleInput | None) -> GivenRule:
    if (rule_text is None) == (rule is None):
        raise RuleRefused(
            DomainError(field="rule", code="ONE_RULE", message="give exactly one of ruleText and rule"), []
        )
    if rule_text is not None:
        try:
            parsed, locations = parse_located(rule_text)
        except RuleSyntaxError as error:
            refusal = DomainError(field="ruleText", code="INVALID_RULE", message="the rule does not parse")
            raise RuleRefused(refusal, [from_syntax_error(error)]) from None
        return GivenRule(parsed, locations)
    assert rule is not None
    try:
        return GivenRule(rule_from_input(rule), None)
    except RuleInputError as error:
        refusal = DomainError(field="rule", code="INVALID_RULE", message="the rule is not well formed")
        raise RuleRefused(refusal, [from_input_error(error)]) from None


def problems_of(error: SegmentError, given: GivenRule | None) -> list[RuleProblemType]:
    """The rule's problems, placed in the form the caller used."""
    if given is None:
        return []
    if given.locations is not None:
        return [from_problem(problem, locations=given.locations) for problem in error.problems]
    return [from_problem(problem, field=input_field(given.rule, problem.path)) for problem in error.problems]
