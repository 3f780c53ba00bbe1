"""Query limits beyond Strawberry's own limiters, and the per-caller introspection switch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from server.auth.principal import Role


def max_root_fields_rule(limit: int) -> type[ValidationRule]:
    """A validation rule refusing operations that select more than ``limit`` root fields.

    Root fields are where the expensive work starts, so a cap on them bounds the fan-out of a
    single request where depth and alias limits do not.
    """

    class MaxRootFields(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            count = _count_fields(node.selection_set, self.context.get_fragment, set())
            if count > limit:
                self.report_error(
                    GraphQLError(
                        f"operation selects {count} root fields; the limit is {limit}",
                        node,
                        extensions={"code": "TOO_MANY_ROOT_FIELDS"},
                    )
                )

    return MaxRootFields


def _count_fields(selection_set: SelectionSetNode, get_fragment: Any, seen: set[str]) -> int:
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            count += 0 if selection.name.value == "__typename" else 1
        elif isinstance(selection, InlineFragmentNode):
            count += _count_fields(selection.selection_set, get_fragment, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = get_fragment(selection.name.value)
            if fragment is not None:
                count += _count_fields(fragment.selection_set, get_fragment, seen)
    return count


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
