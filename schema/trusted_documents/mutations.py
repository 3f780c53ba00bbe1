from __future__ import annotations

import strawberry
from anyio import to_thread
from strawberry.types import Info

from schema.context import Context
from schema.document_checks import DocumentPolicy
from schema.error_boundary import ErrorPolicySchema
from schema.errors import DomainError
from schema.trusted_documents.checks import registration_refusals
from schema.trusted_documents.types import REGISTRARS, RegisterDocumentsPayload
from server.auth.principal import Role
from server.runtime import UnitOfWork
from server.trusted_documents import service as trusted_documents
from server.trusted_documents.service import MAX_DOCUMENTS_PER_CALL


@strawberry.type
class TrustedDocumentMutations:
    @strawberry.mutation(
        extensions=REGISTRARS,
        description=(
            "Register operations to run later by documentId (`sha256:<hex>` of the exact UTF-8 text), checked once"
            " here as a request would be. All or nothing; registering again is harmless. A partner key registers"
            " for its own partner; an admin for the partner named by partnerId, or for every caller without it."
            " See docs/trusted-documents.md."
        ),
    )
    async def register_documents(
        self, info: Info[Context, None], documents: list[str], partner_id: int | None = None
    ) -> RegisterDocumentsPayload:
        caller = info.context.caller
        if len(documents) > MAX_DOCUMENTS_PER_CALL:
            message = f"at most {MAX_DOCUMENTS_PER_CALL} documents per call"
            return _refused([DomainError(field="documents", code="TOO_MANY_DOCUMENTS", message=message)])
        is_partner = caller.role is Role.PARTNER
        if is_partner and partner_id not in (None, caller.partner_id):
            message = "a partner key registers documents for its own partner only"
            return _refused([DomainError(field="partnerId", code="FORBIDDEN", message=message)])
        owner = caller.partner_id if is_partner else partner_id
        schema = info.schema
        if not isinstance(schema, ErrorPolicySchema):
            raise TypeError("documents are checked against the audience schema")
        run_by = Role.PARTNER if owner is not None else None

        def check() -> list[DomainError]:
            return [
                DomainError(
                    field=f"documents.{index}", code=str((error.extensions or {})["code"]), message=error.message
                )
                for index, text in enumerate(documents)
                for error in registration_refusals(schema, text, run_by=run_by)
            ]

        refusals = await to_thread.run_sync(check, limiter=DocumentPolicy.of(schema).caches.threads)
        if refusals:
            return _refused(refusals)

        def work(unit: UnitOfWork) -> RegisterDocumentsPayload:
            if owner is not None and not trusted_documents.partner_exists(unit.session, owner):
                return _refused([DomainError(field="partnerId", code="UNKNOWN_PARTNER", message="no such partner")])
            hashes = trusted_documents.register_documents(
                unit.session, texts=documents, partner_id=owner, registered_by=caller.key_id, now=unit.clock()
            )
            ids = [trusted_documents.document_id(sha256) for sha256 in hashes]
            target = f"partner:{owner}" if owner is not None else "trusted_documents:global"
            unit.audit("trusted_documents.register", target=target, details={"count": len(ids), "ids": ",".join(ids)})
            return RegisterDocumentsPayload(ids=ids, errors=[])

        return await info.context.run(work)


def _refused(errors: list[DomainError]) -> RegisterDocumentsPayload:
    return RegisterDocumentsPayload(ids=[], errors=errors)
