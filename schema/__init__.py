"""The GraphQL schema: thin resolvers over services in ``server`` and ``privacy``.

``build_schema`` refuses to build a schema in which any field lacks a declared permission,
so an unguarded field can never be served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types.base import StrawberryObjectDefinition

from schema.access.mutations import AccessMutations
from schema.access.queries import AccessQueries
from schema.analytics.distributions import DistributionQueries
from schema.analytics.overlaps import OverlapQueries
from schema.analytics.sizes import SizeQueries
from schema.audit.queries import AuditQueries
from schema.consent.mutations import ConsentMutations
from schema.consent.queries import ConsentQueries
from schema.document_checks import DocumentCaches, DocumentChecks, DocumentPolicy
from schema.error_boundary import ErrorPolicySchema
from schema.ingest.mutations import IngestMutations
from schema.ingest.types import SEGMENT_EVENT_SCALAR, SegmentEvent
from schema.limits import DocumentLimits, IntrospectionPolicy, validation_rules
from schema.observe import OperationObserver
from schema.partners.queries import PartnerQueries
from schema.partners.subscriptions import PartnerSubscriptions
from schema.permissions import declared_roles
from schema.profiles.build_mutations import ProfileBuildMutations
from schema.profiles.build_queries import ProfileBuildQueries
from schema.profiles.quality_queries import QualityQueries
from schema.profiles.queries import ProfileQueries
from schema.requests.mutations import RequestMutations
from schema.requests.queries import RequestQueries
from schema.segments.mutations import SegmentMutations
from schema.segments.queries import SegmentQueries
from schema.system.queries import SystemQueries
from schema.trusted_documents.lookup import TrustedDocuments
from schema.trusted_documents.mutations import TrustedDocumentMutations
from schema.trusted_documents.queries import TrustedDocumentQueries
from server.observability.metrics import Metrics
from server.settings import Settings


@strawberry.type
class Query(
    SystemQueries,
    AccessQueries,
    AuditQueries,
    ConsentQueries,
    ProfileQueries,
    ProfileBuildQueries,
    QualityQueries,
    RequestQueries,
    PartnerQueries,
    TrustedDocumentQueries,
    SegmentQueries,
    SizeQueries,
    DistributionQueries,
    OverlapQueries,
):
    pass


@strawberry.type
class Mutation(
    AccessMutations,
    ConsentMutations,
    IngestMutations,
    ProfileBuildMutations,
    RequestMutations,
    TrustedDocumentMutations,
    SegmentMutations,
):
    pass


@strawberry.type
class Subscription(PartnerSubscriptions):
    pass


class AudienceSchema(ErrorPolicySchema):
    """The schema with the document policy its requests, and the documents registered to it, are held to,
    and the metrics its operations are counted in (by the observer, and by ``schema.registered_execution``)."""

    def __init__(self, *args: Any, document_policy: DocumentPolicy, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.document_policy = document_policy
        self.metrics = metrics


class UnguardedFieldError(Exception):
    """A field was declared without a permission; the schema is refused."""


def build_schema(settings: Settings, *, metrics: Metrics | None = None) -> AudienceSchema:
    observer_metrics = metrics or Metrics()
    # The rules are classes built once: the validation cache is keyed on the rules too, and rules
    # built per request would be new classes each time, so nothing would ever be a cache hit
    # (measured: 12 ms of validation on every ingest batch).
    rules = validation_rules()
    limits = DocumentLimits(
        max_depth=settings.max_query_depth, max_aliases=settings.max_aliases, max_root_fields=settings.max_root_fields
    )
    caches = DocumentCaches(
        parser_cache_size=settings.parser_cache_size, validation_cache_size=settings.validation_cache_size
    )
    policy = DocumentPolicy(
        caches=caches,
        limits=limits,
        rules=rules,
        max_tokens=settings.max_tokens,
        trusted=TrustedDocuments(
            size=settings.trusted_document_cache_size, max_tokens=settings.max_tokens, threads=caches.threads
        ),
        trusted_only=settings.trusted_documents_only,
    )
    # Factories, not instances: each request gets its own extension objects and execution context.
    # The introspection policy adds its rule before the checks validate.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: OperationObserver(metrics=observer_metrics),
        lambda: IntrospectionPolicy(open_to_all=settings.demo),
        lambda: DocumentChecks(policy=policy),
    ]
    schema = AudienceSchema(
        document_policy=policy,
        metrics=observer_metrics,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, scalar_map={SegmentEvent: SEGMENT_EVENT_SCALAR}),
    )
    assert_every_field_guarded(schema)
    return schema


# Strawberry's permission extension receives the parent as ``source`` and ``info`` positionally;
# an argument of that name collides with them and fails every call at run time.
RESERVED_ARGUMENT_NAMES = frozenset({"source", "info"})


def assert_every_field_guarded(schema: strawberry.Schema) -> None:
    reserved = [
        f"{definition.name}.{field.python_name}({argument.python_name})"
        for definition in _object_definitions(schema)
        for field in definition.fields
        for argument in field.arguments
        if argument.python_name in RESERVED_ARGUMENT_NAMES
    ]
    if reserved:
        raise UnguardedFieldError("arguments with reserved names: " + ", ".join(sorted(reserved)))
    unguarded = [
        f"{type_name}.{field_name}" for type_name, field_name, roles in field_permissions(schema) if roles is None
    ]
    if unguarded:
        raise UnguardedFieldError("fields without a declared permission: " + ", ".join(sorted(unguarded)))


def field_permissions(schema: strawberry.Schema) -> list[tuple[str, str, frozenset[str] | None]]:
    """(type, field, roles) for every field of every object type we defined."""
    found: list[tuple[str, str, frozenset[str] | None]] = []
    for definition in _object_definitions(schema):
        for field in definition.fields:
            roles = declared_roles(field.extensions)
            name = schema.config.name_converter.get_graphql_name(field)
            found.append((definition.name, name, None if roles is None else frozenset(r.value for r in roles)))
    return found


def _object_definitions(schema: strawberry.Schema) -> list[StrawberryObjectDefinition]:
    definitions = []
    for type_name, graphql_type in schema._schema.type_map.items():
        definition = getattr(graphql_type, "extensions", {}).get("strawberry-definition")
        if type_name.startswith("__") or not isinstance(definition, StrawberryObjectDefinition):
            continue
        if not definition.is_input:
            definitions.append(definition)
    return definitions
