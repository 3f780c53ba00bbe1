"""Parse and validate off the event loop, and answer documents seen before from bounded caches.

Parsing and validation are pure CPU work on the request's path: done on the event loop, one
slow document stops every other request, ``/healthz`` included. A document seen before is
answered from the caches on the loop (dictionary lookups keyed on its text, in place of
Strawberry's ``ParserCache`` and ``ValidationCache``, which hash the whole parsed tree on every
request); a new one is parsed and validated in a worker thread, at most ``CHECK_THREADS`` at a
time, so a burst of new documents waits its turn rather than taking the threads that database
calls need. The rules are bounded in work (``schema.limits``), so no thread is held for long.
The caches are per process and hold refusals too, so a document sent again costs a lookup.

A request naming a registered document (``schema.trusted_documents``) skips both: its tree comes
from the trusted-document cache and was checked when it was registered. Under
``AUDIENCE_TRUSTED_DOCUMENTS_ONLY`` a partner's text is refused here, after parsing (the
registration mutation is the one text a partner may send).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

from anyio import CapacityLimiter, to_thread
from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.errors import DocumentNotFound
from schema.limits import DocumentLimits
from schema.lru_cache import LruCache
from schema.trusted_documents.enforcement import needs_registered_document, trusted_document_required
from schema.trusted_documents.lookup import REQUESTED_OVER_WEBSOCKET, TrustedDocuments, requested_document

__all__ = ["CHECK_THREADS", "DocumentCaches", "DocumentChecks", "DocumentPolicy"]

CHECK_THREADS = 2  # one per core of the reference machine; more threads only share the GIL

Rules = tuple[type[ASTValidationRule], ...]


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


@dataclass(frozen=True)
class DocumentPolicy:
    """What every document is held to, built once per schema: registration checks by the same rules."""

    caches: DocumentCaches
    limits: DocumentLimits
    rules: Rules
    max_tokens: int
    trusted: TrustedDocuments
    trusted_only: bool

    @staticmethod
    def of(schema: object) -> DocumentPolicy:
        """The policy a schema was built with (``schema.AudienceSchema``), for resolvers given ``info.schema``."""
        policy = getattr(schema, "document_policy", None)
        if not isinstance(policy, DocumentPolicy):
            raise TypeError("the schema was built without a document policy")
        return policy

    def refusals(self, schema: GraphQLSchema, document: DocumentNode, rules: Rules) -> list[GraphQLError]:
        """The limits first: a document over one is refused without graphql-core's rules."""
        return self.limits.refusals(document) or validate_document(schema, document, rules)


class DocumentChecks(SchemaExtension):
    """Sets this schema's rules, then finds, parses and validates the document as said above."""

    def __init__(self, *, policy: DocumentPolicy) -> None:
        self.policy = policy
        self.registered = False

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context
        context.validation_rules = self.policy.rules
        # Text wins when both are sent (an Apollo client retrying a hash with its text).
        asked = requested_document(context.operation_extensions) or REQUESTED_OVER_WEBSOCKET.get()
        request = None if context.query else asked
        if request is not None:
            caller = context.context
            document = await self.policy.trusted.find(request, caller.principal, caller.runtime)
            if document is None:
                raise DocumentNotFound
            context.graphql_document = document
            self.registered = True
        yield

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        caches = self.policy.caches
        if context.query is not None and context.graphql_document is None:
            document = caches.parsed.get(context.query)
            if document is None:
                # A syntax error or too many tokens raises here; Strawberry answers it as a parse error.
                work = partial(parse, context.query, max_tokens=self.policy.max_tokens)
                document = await to_thread.run_sync(work, limiter=caches.threads)
                caches.parsed.put(context.query, document)
            context.graphql_document = document
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        if self.registered:
            context.pre_execution_errors = []  # checked at registration; Strawberry skips its own run
            yield
            return
        document = context.graphql_document
        principal = getattr(context.context, "principal", None)
        if self.policy.trusted_only and document is not None and needs_registered_document(principal, document):
            context.pre_execution_errors = [trusted_document_required()]
            yield
            return
        caches = self.policy.caches
        # The introspection policy may have added a rule for this caller: the key holds the rules.
        rules = tuple(context.validation_rules)
        key = (context.query, rules) if context.query is not None else None
        errors = caches.validated.get(key) if key is not None else None
        if errors is None and document is not None:
            work = partial(self.policy.refusals, context.schema._schema, document, rules)
            errors = await to_thread.run_sync(work, limiter=caches.threads)
            if key is not None:
                caches.validated.put(key, errors)
        context.pre_execution_errors = errors
        yield
