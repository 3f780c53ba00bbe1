"""Where every error of every transport passes through the policy of ``schema.errors``.

Strawberry hands each error list to ``Schema.process_errors`` before it returns the result (HTTP)
or sends it (graphql-transport-ws), whichever path produced it: parsing, validation, execution,
a subscription's events. Overriding it there is one place no transport can go around. On the
streaming path Strawberry lets an exception raised by an extension (a parse error from the
parser cache, a failing validation rule) escape instead of answering with it, so ``stream``
turns such an exception into an error result, shaped like the HTTP path's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    EnumValueNode,
    FloatValueNode,
    GraphQLEnumType,
    GraphQLError,
    IntValueNode,
    NameNode,
    StringValueNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from schema.errors import shape_errors


class ErrorPolicySchema(strawberry.Schema):
    """Strawberry returns or sends the very list it passes, so it is rewritten in place.

    Strawberry's own error logging is not called: it writes messages, which may echo input.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_names = schema_names(self)

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        context = execution_context.context if execution_context is not None else None
        errors[:] = shape_errors(errors, _request_id(context), self.known_names, sent_values(execution_context))

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        results = await super().stream(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
            allowed_operation_types=allowed_operation_types,
        )
        return self._failures_as_results(results, _request_id(context_value))

    async def _failures_as_results(self, results: StreamResult, request_id: str) -> StreamResult:
        started = False
        try:
            async with aclosing(results):
                async for result in results:
                    started = True
                    yield result
        except Exception as failure:  # noqa: BLE001 - answered, shaped and logged like on HTTP
            error = failure if isinstance(failure, GraphQLError) else GraphQLError(str(failure), original_error=failure)
            errors = shape_errors([error], request_id, self.known_names)
            yield ExecutionResult(data=None, errors=errors) if started else PreExecutionError(data=None, errors=errors)


def _request_id(context: object) -> str:
    return str(getattr(context, "request_id", "-"))


def schema_names(schema: strawberry.Schema) -> frozenset[str]:
    """Type, field, argument and enum value names that error messages may repeat."""
    names: set[str] = set()
    for type_name, graphql_type in schema._schema.type_map.items():
        names.add(type_name)
        if isinstance(graphql_type, GraphQLEnumType):
            names.update(graphql_type.values)
        for field_name, field in (getattr(graphql_type, "fields", None) or {}).items():
            names.add(field_name)
            names.update(getattr(field, "args", {}) or {})
    return frozenset(names)


def sent_values(execution_context: ExecutionContext | None) -> frozenset[str]:
    """Every literal and every name of the document, every key and leaf of the variables, as text.

    Names are there because a client makes up fields, arguments, aliases and directives, and a
    message may print them unquoted; the schema's own names are kept by ``scrub_message``.
    """
    if execution_context is None:
        return frozenset()
    return request_values(
        execution_context.operation_name, execution_context.variables, execution_context.graphql_document
    )


def request_values(operation_name: str | None, variables: object, document: object) -> frozenset[str]:
    """``sent_values`` from the parts of a request, for a path that runs without Strawberry's context."""
    found: set[str] = set()
    if operation_name:
        found.add(operation_name)
    _variable_leaves(variables, found)
    if isinstance(document, DocumentNode):
        found.update(document_values(document))
    return frozenset(found)


def document_values(document: DocumentNode) -> set[str]:
    """Every literal and every name a document carries, as text."""
    found: set[str] = set()
    visit(document, _LiteralCollector(found))
    return found


class _LiteralCollector(Visitor):
    def __init__(self, found: set[str]) -> None:
        super().__init__()
        self.found = found

    def enter(self, node: Any, *_args: Any) -> None:
        if isinstance(node, IntValueNode | FloatValueNode | StringValueNode | EnumValueNode | NameNode):
            self.found.add(node.value)


def _variable_leaves(value: object, found: set[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.add(str(key))
            _variable_leaves(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _variable_leaves(item, found)
    elif value is not None and not isinstance(value, bool):
        found.add(str(value))
