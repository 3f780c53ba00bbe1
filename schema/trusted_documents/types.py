from __future__ import annotations

from datetime import datetime

import strawberry

from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role

REGISTRARS = requires(Role.PARTNER, Role.ADMIN)
ADMIN = requires(Role.ADMIN)


@strawberry.type(description="What registerDocuments answers: every id, or errors and nothing registered.")
class RegisterDocumentsPayload:
    ids: list[str] = strawberry.field(
        extensions=REGISTRARS, description="`sha256:<hex>` of each document, in the order sent; send it as documentId."
    )
    errors: list[DomainError] = strawberry.field(extensions=REGISTRARS)


@strawberry.type(description="A registered document; its id is the sha256 of its exact UTF-8 text.")
class TrustedDocument:
    id: str = strawberry.field(extensions=ADMIN)
    partner_id: int | None = strawberry.field(
        extensions=ADMIN, description="The partner whose keys may run it; null: every key the fields allow."
    )
    document: str = strawberry.field(extensions=ADMIN)
    registered_at: datetime = strawberry.field(extensions=ADMIN)
    registered_by: str | None = strawberry.field(extensions=ADMIN, description="The API key id that registered it.")
