from __future__ import annotations

import re

import polars as pl
import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from schema.context import Context
from schema.errors import DomainError
from schema.ingest.convert import events_frame, unknown_fields
from schema.ingest.types import (
    ADMIN,
    SENDERS,
    AttributeBatchInput,
    EventBatchInput,
    IngestEventsPayload,
    RejectedRecord,
    UpsertAttributesPayload,
)
from server.auth.principal import Role
from server.ingest.attributes import ATTRIBUTE_MESSAGES, ATTRIBUTE_SCHEMA, AttributeResult, upsert_attributes
from server.ingest.group_commit import GroupKey
from server.ingest.service import CheckedEvents, IngestResult, check_events, ingest_checked
from server.ingest.setup import guardrails_from, validation_context
from server.ingest.vocabulary import REJECT_MESSAGES, RejectCode
from server.runtime import UnitOfWork

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


# What a partner must not learn about a person through the answer to its own batch.
UNDISCLOSED_TO_PARTNERS = frozenset({RejectCode.NO_CONSENT, RejectCode.SUPPRESSED, RejectCode.AMBIGUOUS_IDENTITY})


def _payload(
    result: IngestResult,
    errors: list[DomainError] | None = None,
    *,
    for_partner: bool = False,
    dropped_fields: int = 0,
) -> IngestEventsPayload:
    shown = [r for r in result.rejected if not (for_partner and r.code in UNDISCLOSED_TO_PARTNERS)]
    return IngestEventsPayload(
        received=result.received,
        accepted=result.accepted + len(result.rejected) - len(shown),
        duplicates=result.duplicates,
        rejected=[RejectedRecord(index=r.index, code=r.code.value, message=r.message) for r in shown],
        dropped_topics=result.dropped_topics,
        dropped_labels=result.dropped_labels,
        dropped_fields=dropped_fields,
        junk_identifiers=result.junk_identifiers,
        new_subjects=result.new_subjects,
        merges=result.merges,
        refused_merges=result.refused_merges,
        identity_limit_hits=result.identity_limit_hits,
        errors=errors or [],
    )


@strawberry.type
class IngestMutations:
    @strawberry.mutation(
        extensions=SENDERS,
        description="Ingest a batch of events. Rejected records change nothing; the others land; "
        "a batch sent twice adds nothing the second time.",
    )
    async def ingest_events(self, info: Info[Context, None], batch: EventBatchInput) -> IngestEventsPayload:
        principal = info.context.caller
        settings = info.context.runtime.settings
        received = len(batch.events)
        if received > settings.ingest_max_batch:
            return _payload(
                IngestResult(received=received),
                [
                    DomainError(
                        field="batch.events",
                        code=RejectCode.TOO_LARGE.value,
                        message=REJECT_MESSAGES[RejectCode.TOO_LARGE],
                    )
                ],
            )
        runtime = info.context.runtime
        known_as: tuple[str, ...] = ()
        if principal.role is Role.PARTNER:
            source, partner_id = f"partner:{principal.partner_id}", principal.partner_id
        else:
            source, partner_id = batch.source or "api", None
            if not _SOURCE.match(source):
                return _payload(
                    IngestResult(received=received),
                    [
                        DomainError(
                            field="batch.source",
                            code="INVALID_SOURCE",
                            message="source must be 1-64 characters of a-z, 0-9, _ . : -",
                        )
                    ],
                )
            # Declared, or a keyed hash (docs/ingestion.md); its other forms keep resends duplicates.
            source, *older = runtime.kit.labels.every_form(source)
            known_as = tuple(older)
        events = list(batch.events)

        def check() -> tuple[CheckedEvents, int]:
            """Everything that needs no write lock, done before taking it: concurrent batches overlap here."""
            frame, malformed = events_frame(events)
            if partner_id is not None:
                # A partner's customer id is its own: scoped to it, never matched against ours.
                frame = frame.with_columns(
                    partner_user_id=pl.coalesce("partner_user_id", "user_id"), user_id=pl.lit(None, dtype=pl.String)
                )
            with runtime.sessions() as session:
                context = validation_context(
                    session, settings, runtime.kit, now=runtime.clock(), forced_partner_id=partner_id
                )
            return check_events(frame, context, runtime.kit, malformed=malformed), unknown_fields(events)

        checked, dropped_fields = await run_in_threadpool(check)

        guardrails = guardrails_from(settings)
        group_commit = info.context.group_commit
        if group_commit is not None:
            result = await group_commit.ingest(GroupKey(source, principal.actor, known_as), checked, guardrails)
        else:

            def work(unit: UnitOfWork) -> IngestResult:
                return ingest_checked(unit, checked, source=source, guardrails=guardrails, known_as=known_as)

            result = await info.context.run(work)
        return _payload(result, for_partner=partner_id is not None, dropped_fields=dropped_fields)

    @strawberry.mutation(
        extensions=ADMIN,
        description="Declared attributes of known, consenting people: PII encrypted, quasi-identifiers banded. "
        "First-party sources only (admin keys): a partner never writes a person's PII.",
    )
    async def upsert_attributes(self, info: Info[Context, None], batch: AttributeBatchInput) -> UpsertAttributesPayload:
        settings = info.context.runtime.settings
        received = len(batch.records)
        if received > settings.ingest_max_batch:
            return UpsertAttributesPayload(
                received=received,
                accepted=0,
                fields_encrypted=0,
                rejected=[],
                errors=[
                    DomainError(
                        field="batch.records",
                        code=RejectCode.TOO_LARGE.value,
                        message=REJECT_MESSAGES[RejectCode.TOO_LARGE],
                    )
                ],
            )
        frame = pl.DataFrame(
            {name: [getattr(record, name) for record in batch.records] for name in ATTRIBUTE_SCHEMA},
            schema=ATTRIBUTE_SCHEMA,
        )

        def work(unit: UnitOfWork) -> AttributeResult:
            return upsert_attributes(
                unit, frame, current_year=unit.clock().year, rules=unit.kit.rules, guardrails=guardrails_from(settings)
            )

        result = await info.context.run(work)
        return UpsertAttributesPayload(
            received=result.received,
            accepted=result.accepted,
            fields_encrypted=result.fields_encrypted,
            rejected=[
                RejectedRecord(index=row, code=code, message=_attribute_message(code)) for row, code in result.rejected
            ],
            errors=[],
        )


def _attribute_message(code: str) -> str:
    if code in ATTRIBUTE_MESSAGES:
        return ATTRIBUTE_MESSAGES[code]
    return REJECT_MESSAGES[RejectCode(code)]
