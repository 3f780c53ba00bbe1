from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from schema.context import Context
from schema.errors import UNAUTHENTICATED_ERROR, ErrorCode
from schema.partners.convert import to_change
from schema.partners.types import PARTNER, SegmentChange
from server.partners import feed
from server.partners.grants import PartnerReadError


@strawberry.type
class PartnerSubscriptions:
    @strawberry.subscription(
        extensions=PARTNER,
        description=f"The change feed pushed: every entry after the cursor, then each new one (polled every "
        f"{feed.POLL_INTERVAL_S} s). Ends with UNAUTHENTICATED when the key is revoked.",
    )
    async def segment_changes(
        self, info: Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[SegmentChange, None]:
        try:
            async for entry in feed.follow_changes(info.context.runtime, info.context.caller, after=after):
                yield to_change(entry)
        except PartnerReadError as error:
            raise GraphQLError(error.message, extensions={"code": error.code}) from None
        except feed.KeyRevoked:
            raise GraphQLError(
                UNAUTHENTICATED_ERROR["message"], extensions={"code": ErrorCode.UNAUTHENTICATED}
            ) from None
