from __future__ import annotations

import strawberry
from sqlalchemy.orm import Session
from strawberry.types import Info

from schema.context import Context
from schema.requests.types import (
    COMPLIANCE,
    DataSubjectRequest,
    ErasureReceipt,
    RequestKindType,
    RequestListing,
    TableCount,
    to_request,
)
from server.erasure.receipts import receipts_of_request
from server.requests import records
from server.requests.lifecycle import RequestError, RequestKind


@strawberry.type
class RequestQueries:
    @strawberry.field(extensions=COMPLIANCE, description="One request by id; null when there is none.")
    async def data_subject_request(self, info: Info[Context, None], id: int) -> DataSubjectRequest | None:
        now = info.context.runtime.clock()

        def read(session: Session) -> DataSubjectRequest | None:
            try:
                return to_request(records.find_request(session, id, now))
            except RequestError:
                return None

        return await info.context.read(read)

    @strawberry.field(
        extensions=COMPLIANCE, description="Requests, the one due soonest first (at most 1,000 per call)."
    )
    async def data_subject_requests(
        self,
        info: Info[Context, None],
        listing: RequestListing = RequestListing.OPEN,
        kinds: list[RequestKindType] | None = None,  # type: ignore[valid-type]
        first: int = 100,
    ) -> list[DataSubjectRequest]:
        now = info.context.runtime.clock()
        wanted = [RequestKind(kind) for kind in kinds or []]
        views = await info.context.read(
            lambda session: records.list_requests(session, now=now, which=listing.value, kinds=wanted, limit=first)
        )
        return [to_request(view) for view in views]

    @strawberry.field(extensions=COMPLIANCE, description="The receipts of an erasure request (one per run).")
    async def erasure_receipts(self, info: Info[Context, None], request_id: int) -> list[ErasureReceipt]:
        receipts = await info.context.read(lambda session: receipts_of_request(session, request_id))
        return [
            ErasureReceipt(
                id=r.id,
                request_id=r.request_id,
                reason=r.reason,
                started_at=r.started_at,
                completed_at=r.completed_at,
                subjects=r.subjects,
                keys_destroyed=r.keys_destroyed,
                identifiers_suppressed=r.identifiers_suppressed,
                rows_removed=[TableCount(table=t, rows=n) for t, n in sorted(r.rows_removed.items())],
            )
            for r in receipts
        ]
