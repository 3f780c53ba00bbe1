"""Parse and validate off the event loop, and answer documents seen before from bounded caches.

Parsing and validation are pure CPU work on the request's path: done on the event loop, one
slow document stops every other request, ``/healthz`` included. A document seen before is
answered from the caches on the loop (dictionary lookups keyed on its text, in place of
Strawberry's ``ParserCache`` and ``ValidationCache``, which hash the whole parsed tree on every
request); a new one is parsed and validated in a worker thread, at most ``CHECK_THREADS`` at a
time, so a burst of new documents waits its turn rather than taking the threads that database
calls need. The rules are bounded in work (``schema.limits``), so no thread is held for long.
The caches are per process and hold refusals too, so a document sent again costs a lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from anyio import CapacityLimiter, to_thread
from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.limits import DocumentLimits

__all__ = ["CHECK_THREADS", "DocumentCaches", "DocumentChecks"]

CHECK_THREADS = 2  # one per core of the reference machine; more threads only share the GIL

Rules = tuple[type[ASTValidationRule], ...]
K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Least recently used first out; touched only from the event loop's thread."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.maxsize:
            self._items.popitem(last=False)


@dataclass
class DocumentCaches:
    """One per schema: parsed documents by text, validation errors by text and rules."""

    parser_cache_size: int
    validation_cache_size: int
    parsed: LruCache[str, DocumentNode] = field(init=False)
    validated: LruCache[tuple[str, Rules], list[GraphQLError]] = field(init=False)
    threads: CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.parsed = LruCache(self.parser_cache_size)
        self.validated = LruCache(self.validation_cache_size)
        self.threads = CapacityLimiter(CHECK_THREADS)


class DocumentChecks(SchemaExtension):
    """Sets this schema's rules and token limit, then parses and validates as said above.

    The limits are checked first; a document over one is refused without graphql-core's rules.
    """

    def __init__(self, *, caches: DocumentCaches, limits: DocumentLimits, rules: Rules, max_tokens: int) -> None:
        self.caches = caches
        self.limits = limits
        self.rules = rules
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.rules
        yield

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            document = self.caches.parsed.get(context.query)
            if document is None:
                # A syntax error or too many tokens raises here; Strawberry answers it as a parse error.
                work = partial(parse, context.query, max_tokens=self.max_tokens)
                document = await to_thread.run_sync(work, limiter=self.caches.threads)
                self.caches.parsed.put(context.query, document)
            context.graphql_document = document
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        # The introspection policy may have added a rule for this caller: the key holds the rules.
        rules = tuple(context.validation_rules)
        key = (context.query, rules) if context.query is not None else None
        errors = self.caches.validated.get(key) if key is not None else None
        if errors is None and context.graphql_document is not None:
            work = partial(self._validate, context.schema._schema, context.graphql_document, rules)
            errors = await to_thread.run_sync(work, limiter=self.caches.threads)
            if key is not None:
                self.caches.validated.put(key, errors)
        context.pre_execution_errors = errors
        yield

    def _validate(self, schema: GraphQLSchema, document: DocumentNode, rules: Rules) -> list[GraphQLError]:
        return self.limits.refusals(document) or validate_document(schema, document, rules)
