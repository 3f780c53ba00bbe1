from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.trusted_documents.types import ADMIN, TrustedDocument
from server.trusted_documents import service as trusted_documents

MAX_LISTED = 1000


@strawberry.type
class TrustedDocumentQueries:
    @strawberry.field(
        extensions=ADMIN,
        description="Registered documents, newest first; with partnerId, those that partner's keys can run.",
    )
    async def trusted_documents(
        self, info: Info[Context, None], partner_id: int | None = None, first: int = 100
    ) -> list[TrustedDocument]:
        limit = max(0, min(first, MAX_LISTED))
        found = await info.context.read(
            lambda session: trusted_documents.list_documents(session, partner_id=partner_id, limit=limit)
        )
        return [
            TrustedDocument(
                id=trusted_documents.document_id(document.sha256),
                partner_id=document.partner_id,
                document=document.document,
                registered_at=document.registered_at,
                registered_by=document.registered_by,
            )
            for document in found
        ]
