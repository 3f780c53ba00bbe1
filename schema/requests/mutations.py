"""Data-subject requests: file, verify, reject, and carry out each kind (thin over server.requests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.scalars import JSON
from strawberry.types import Info

from privacy.consent import ConsentError
from privacy.identifiers import InvalidIdentifier
from schema.context import Context
from schema.errors import DomainError
from schema.requests.types import (
    COMPLIANCE,
    AttributeChange,
    AttributeChangeInput,
    ExportPayload,
    FileRequestInput,
    RectifyPayload,
    RejectionReasonType,
    RequestPayload,
    to_request,
)
from server.rectification.service import RectificationError
from server.requests import execution, records
from server.requests.lifecycle import RejectionReason, RequestError, RequestKind
from server.requests.records import RequestView

T = TypeVar("T")
REFUSALS = (RequestError, InvalidIdentifier, ConsentError, RectificationError)


def _refusal(error: Exception) -> DomainError:
    """Every refusal names a rule and at most a field, never a value the caller sent."""
    if isinstance(error, InvalidIdentifier):
        return DomainError(field="identifier", code=error.code, message=error.message)
    if isinstance(error, RequestError):
        return DomainError(field=error.field, code=error.code.value, message=error.message)
    if isinstance(error, RectificationError):
        return DomainError(field=error.field, code=error.code, message=error.message)
    assert isinstance(error, ConsentError)
    return DomainError(field="identifier", code=error.code, message=error.message)


async def _request(info: Info[Context, None], work: Callable[[], RequestView]) -> RequestPayload:
    try:
        view = await run_in_threadpool(work)
    except REFUSALS as error:
        return RequestPayload(request=None, errors=[_refusal(error)])
    return RequestPayload(request=to_request(view), errors=[])


@strawberry.type
class RequestMutations:
    @strawberry.mutation(
        extensions=COMPLIANCE, description="File a request in the person's name; due one month after receipt."
    )
    async def file_request(self, info: Info[Context, None], input: FileRequestInput) -> RequestPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor

        def work() -> RequestView:
            with runtime.unit_of_work(actor) as unit:
                return records.file_request(unit, kind=RequestKind(input.kind), identifier=input.identifier.to_domain())

        return await _request(info, work)

    @strawberry.mutation(
        extensions=COMPLIANCE,
        description="Record that the requester's identity was verified: how (a label such as 'email-challenge') "
        "and a reference to the proof (a ticket, never the document). Your API key is recorded as the verifier.",
    )
    async def verify_request(self, info: Info[Context, None], id: int, method: str, reference: str) -> RequestPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor

        def work() -> RequestView:
            with runtime.unit_of_work(actor) as unit:
                return records.verify_request(unit, id, method=method, reference=reference)

        return await _request(info, work)

    @strawberry.mutation(extensions=COMPLIANCE, description="Refuse an open request, with a reason from a fixed list.")
    async def reject_request(
        self,
        info: Info[Context, None],
        id: int,
        reason: RejectionReasonType,  # type: ignore[valid-type]
    ) -> RequestPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor

        def work() -> RequestView:
            with runtime.unit_of_work(actor) as unit:
                return records.reject_request(unit, id, RejectionReason(reason))

        return await _request(info, work)

    @strawberry.mutation(
        extensions=COMPLIANCE,
        description="Carry out a verified ERASURE, RESTRICTION or OBJECTION request (or finish an interrupted one). "
        "An erasure completes in one transaction: from its commit nothing of the person is read or counted.",
    )
    async def execute_request(self, info: Info[Context, None], id: int) -> RequestPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor
        return await _request(info, lambda: execution.execute(runtime, actor, id))

    @strawberry.mutation(extensions=COMPLIANCE, description="Lift a completed restriction: processing resumes.")
    async def lift_restriction(self, info: Info[Context, None], id: int) -> RequestPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor
        return await _request(info, lambda: execution.lift_restriction(runtime, actor, id))

    @strawberry.mutation(
        extensions=COMPLIANCE,
        description="Export everything held on the person of a verified ACCESS request (audited each time); "
        "a completed one can be exported again.",
    )
    async def export_request(self, info: Info[Context, None], id: int) -> ExportPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor
        try:
            exported = await run_in_threadpool(lambda: execution.export(runtime, actor, id))
        except REFUSALS as error:
            return ExportPayload(request=None, document=None, errors=[_refusal(error)])
        return ExportPayload(request=to_request(exported.request), document=cast(JSON, exported.document), errors=[])

    @strawberry.mutation(
        extensions=COMPLIANCE,
        description="Correct declared attributes of a verified RECTIFICATION request; the audit log records "
        "which fields changed and from which kind of value to which ('absent', 'present'), never the values.",
    )
    async def rectify_request(
        self, info: Info[Context, None], id: int, changes: list[AttributeChangeInput]
    ) -> RectifyPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor
        wanted = {change.field: change.value for change in changes}
        try:
            rectified = await run_in_threadpool(lambda: execution.rectify_request(runtime, actor, id, wanted))
        except REFUSALS as error:
            return RectifyPayload(request=None, changes=[], errors=[_refusal(error)])
        return RectifyPayload(
            request=to_request(rectified.request),
            changes=[AttributeChange(field=c.field, before=c.before, after=c.after) for c in rectified.changes],
            errors=[],
        )
