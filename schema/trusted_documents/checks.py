"""A document offered for registration, held to what a request is held to, once.

The token and size limits, the depth, alias and root-field limits, graphql-core's rules with our
overlap budget, no introspection (a registered document is run without validation, so a partner
key must not get through it what validation refuses it), and, when the document will belong to a
partner, no field that role may not read: the permission on each field still runs at execution,
this only refuses early what could never answer.
"""

from __future__ import annotations

from graphql import GraphQLError, parse
from graphql.validation import NoSchemaIntrospectionCustomRule

from schema.document_checks import DocumentPolicy
from schema.error_boundary import ErrorPolicySchema, document_values
from schema.errors import shape_errors
from schema.permissions import fields_allowed_rule
from server.auth.principal import Role
from server.trusted_documents.service import MAX_DOCUMENT_BYTES

__all__ = ["registration_refusals"]


def registration_refusals(schema: ErrorPolicySchema, text: str, *, run_by: Role | None) -> list[GraphQLError]:
    """Why ``text`` cannot be registered (empty: it can), worded as a request's errors would be.

    ``run_by``: the role of the keys that will run it, when it will belong to a partner.
    """
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        message = f"the document exceeds {MAX_DOCUMENT_BYTES} bytes"
        return [GraphQLError(message, extensions={"code": "DOCUMENT_TOO_LARGE"})]
    policy = DocumentPolicy.of(schema)
    try:
        document = parse(text, max_tokens=policy.max_tokens)
    except GraphQLError as error:
        return shape_errors([error], "-", schema.known_names)
    role_rules = (fields_allowed_rule(run_by),) if run_by is not None else ()
    rules = (*policy.rules, NoSchemaIntrospectionCustomRule, *role_rules)
    refused = policy.refusals(schema._schema, document, rules)
    return shape_errors(refused, "-", schema.known_names, document_values(document))
