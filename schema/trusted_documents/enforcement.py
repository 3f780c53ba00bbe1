"""``AUDIENCE_TRUSTED_DOCUMENTS_ONLY``: partner keys run registered documents, and send text only to register.

Other roles are not concerned: internal tools and people write new queries every day. A partner
app's operations are fixed when it ships, so it registers them (by text: the one text a partner
may still send is a document whose every operation is a mutation selecting ``registerDocuments``
and nothing else at its root) and runs them by id from then on.
"""

from __future__ import annotations

from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode, OperationType

from schema.errors import ErrorCode
from server.auth.principal import Principal, Role

__all__ = ["REGISTRATION_FIELD", "needs_registered_document", "trusted_document_required"]

REGISTRATION_FIELD = "registerDocuments"


def needs_registered_document(principal: Principal | None, document: DocumentNode) -> bool:
    """True when this caller, under enforcement, may not run this text."""
    if principal is None or principal.role is not Role.PARTNER:
        return False
    return not _registers_only(document)


def _registers_only(document: DocumentNode) -> bool:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return bool(operations) and all(
        operation.operation is OperationType.MUTATION
        and all(
            isinstance(selection, FieldNode) and selection.name.value == REGISTRATION_FIELD
            for selection in operation.selection_set.selections
        )
        for operation in operations
    )


def trusted_document_required() -> GraphQLError:
    return GraphQLError(
        "this key may run registered documents only: send documentId (see registerDocuments)",
        extensions={"code": ErrorCode.TRUSTED_DOCUMENT_REQUIRED},
    )
