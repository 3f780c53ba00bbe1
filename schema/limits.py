"""Query limits with clear codes, each costing what the document's text costs, and the introspection switch.

The limits are checked before graphql-core's rules and in time linear in the document
(``schema.document_shape``): a document over a limit is refused without running the rest. The
rest is bounded too: graphql-core's overlap rule compares pairs of fields with the same response
name, so a document of 5,000 tokens can ask it for hundreds of thousands of comparisons (3 s on
the reference machine within graphql-core's own budget of 500,000 units); ``overlap_rule`` gives
it a smaller budget and a code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, SelectionSetNode, ValidationRule, specified_rules
from graphql.validation import NoSchemaIntrospectionCustomRule, OverlappingFieldsCanBeMergedRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension

from schema.document_shape import measure_document
from server.auth.principal import Role

# Documents we accept use a small fraction of this (GraphiQL's introspection query: 0 units, a
# query of fragments selecting the same fields: tens); one that exhausts it is refused with
# QUERY_TOO_COMPLEX after about 50 ms of work (bench/validation.py).
OVERLAP_BUDGET = 10_000
# The same field selected again and again at one level is the cheapest way to feed that rule
# pairs (and a known denial-of-service probe); no client needs it more than a few times.
MAX_FIELD_REPEATS = 30


@dataclass(frozen=True)
class DocumentLimits:
    """Depth per operation, aliases per document, root fields per operation, and repeated fields.

    Each counts the document as if its fragments were inlined, so a fragment counts each time it
    is spread. Root fields are where the expensive work starts, so a cap on them bounds the
    fan-out of a single request where depth and alias limits do not.
    """

    max_depth: int
    max_aliases: int
    max_root_fields: int

    def refusals(self, document: DocumentNode) -> list[GraphQLError]:
        shape = measure_document(document)
        refused: list[GraphQLError] = []
        for operation in shape.operations:
            if operation.depth > self.max_depth:
                message = f"the operation exceeds maximum operation depth of {self.max_depth}"
                refused.append(GraphQLError(message, operation.node, extensions={"code": "QUERY_TOO_DEEP"}))
            if operation.root_fields > self.max_root_fields:
                message = f"operation selects {operation.root_fields} root fields; the limit is {self.max_root_fields}"
                refused.append(GraphQLError(message, operation.node, extensions={"code": "TOO_MANY_ROOT_FIELDS"}))
        if shape.aliases > self.max_aliases:
            message = f"{shape.aliases} aliases found. Allowed: {self.max_aliases}"
            refused.append(GraphQLError(message, extensions={"code": "TOO_MANY_ALIASES"}))
        if shape.repeats > MAX_FIELD_REPEATS:
            message = f"a field is selected {shape.repeats} times at one level; the limit is {MAX_FIELD_REPEATS}"
            refused.append(GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"}))
        return refused


def validation_rules() -> tuple[type[ASTValidationRule], ...]:
    """graphql-core's rules, the overlap rule on our budget; built once per schema.

    The validation cache is keyed on the rules, so they must be the same classes on every request.
    """
    budgeted = overlap_rule(OVERLAP_BUDGET)
    return tuple(budgeted if rule is OverlappingFieldsCanBeMergedRule else rule for rule in specified_rules)


def overlap_rule(budget: int) -> type[ValidationRule]:
    """graphql-core's OverlappingFieldsCanBeMergedRule, aborting with QUERY_TOO_COMPLEX past ``budget`` units."""

    class BudgetedOverlappingFields(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: Any) -> None:
            super().__init__(context)
            self.rule_context.remaining_complexity_budget = budget

        def enter_selection_set(self, selection_set: SelectionSetNode, *args: Any) -> None:
            try:
                super().enter_selection_set(selection_set, *args)
            except ValidationAbortedError:
                if self.rule_context.remaining_complexity_budget >= 0:
                    raise  # the error limit, not the budget
                raise ValidationAbortedError(
                    "the document is too complex to check: too many selections of the same fields",
                    extensions={"code": "QUERY_TOO_COMPLEX"},
                ) from None

    return BudgetedOverlappingFields


INTERNAL_ROLES = frozenset({Role.COMPLIANCE, Role.ANALYST, Role.MARKETER, Role.ADMIN})


class IntrospectionPolicy(SchemaExtension):
    """Introspection for internal roles only, unless the server runs as a demo.

    It adds graphql-core's own rule to this request's validation rules; the validation cache
    keys on the rules, so one caller's cached result never serves another's.
    """

    def __init__(self, *, open_to_all: bool) -> None:
        self.open_to_all = open_to_all

    def on_validate(self) -> Iterator[None]:
        principal = getattr(self.execution_context.context, "principal", None)
        allowed = self.open_to_all or (principal is not None and principal.role in INTERNAL_ROLES)
        if not allowed:
            rules = tuple(self.execution_context.validation_rules)
            self.execution_context.validation_rules = (*rules, NoSchemaIntrospectionCustomRule)
        yield
