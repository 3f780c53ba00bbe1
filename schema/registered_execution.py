"""A registered document run straight on graphql-core, with what Strawberry does around it that matters.

Why: measured (docs/performance.md, *Trusted documents*), Strawberry spends ~110 µs per request
around ~40 µs of graphql-core execution (extension objects built and entered, an execution
context, result handling), so running by ``documentId`` through it saved nothing over cached text.
A registered document needs none of that: it was parsed and checked when it was registered and
its tree is cached by hash (``schema.trusted_documents.lookup``). So this calls graphql-core's
``execute`` on the schema's ``GraphQLSchema`` with that tree, and keeps what matters:

- permissions: each field's ``requires(...)`` is a field extension that Strawberry compiled into
  the field's resolver when the schema was built, so it runs here as it does on the other path;
- the typed ``Context`` every resolver receives, the same object;
- metrics and the operation fields of the log line, by ``schema.observe.record_operation``;
- errors, shaped by ``schema.errors.shape_errors`` with the document's and variables' values,
  as ``ErrorPolicySchema.process_errors`` shapes them (no value sent echoed, masks with the
  request id, ``SERVICE_UNAVAILABLE`` for a database away).

What is left to Strawberry (``run`` answers None): a document the caller may not run or that is
unknown, an operation name that picks no operation, a subscription. They are rare, and answered
there exactly as before rather than imitated here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from graphql import ExecutionResult, GraphQLError, OperationType, execute, get_operation_ast
from strawberry.execution.is_awaitable import optimized_is_awaitable

from schema.context import Context
from schema.document_checks import DocumentPolicy
from schema.error_boundary import request_values
from schema.errors import shape_errors
from schema.observe import record_operation
from schema.trusted_documents.lookup import DocumentRequest

if TYPE_CHECKING:
    from schema import AudienceSchema

__all__ = ["run"]

DIRECT_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


async def run(
    schema: AudienceSchema,
    request: DocumentRequest,
    *,
    context: Context,
    variables: dict[str, Any] | None,
    operation_name: str | None,
) -> ExecutionResult | None:
    """The result of the registered document, errors shaped; None to leave the request to Strawberry."""
    started = time.perf_counter()
    document = await DocumentPolicy.of(schema).trusted.find(request, context.principal, context.runtime)
    if document is None:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation not in DIRECT_OPERATIONS:
        return None
    outcome = execute(
        schema._schema,
        document,
        variable_values=variables,
        operation_name=operation_name,
        context_value=context,
        is_awaitable=cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable),
    )
    result = await outcome if isawaitable(outcome) else outcome
    errors: list[GraphQLError] | None = None
    if result.errors:
        sent = request_values(operation_name, variables, document)
        errors = shape_errors(result.errors, context.request_id, schema.known_names, sent)
    name = operation.name.value if operation.name is not None else None
    seconds = time.perf_counter() - started
    record_operation(schema.metrics, name, failed=bool(errors), seconds=seconds, context=context)
    return ExecutionResult(data=result.data, errors=errors)
