from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from privacy import audit
from privacy.identifiers import InvalidIdentifier
from schema.audit.cursors import cursor_of, seq_of
from schema.audit.types import (
    COMPLIANCE,
    AuditDetail,
    AuditEntry,
    AuditEntryConnection,
    AuditEntryEdge,
    AuditVerification,
)
from schema.consent.types import IdentifierInput
from schema.context import Context
from schema.errors import DomainError
from schema.pagination import EMPTY_PAGE, PageInfo
from server.audit import service
from server.audit.search import AuditFilters, AuditPage, AuditSearchError, PageBounds
from server.runtime import UnitOfWork


@strawberry.type
class AuditQueries:
    @strawberry.field(extensions=COMPLIANCE, description="Audit entries after a sequence number, oldest first.")
    async def audit_log(self, info: Info[Context, None], after_seq: int = 0, first: int = 100) -> list[AuditEntry]:
        def work(unit: UnitOfWork) -> list[audit.AuditEntry]:
            entries = service.page(unit.session, after_seq=after_seq, first=first)
            unit.audit("audit.read", details={"after_seq": after_seq, "count": len(entries)})
            return entries

        return [_to_graphql(entry) for entry in await info.context.run(work)]

    @strawberry.field(
        extensions=COMPLIANCE,
        description="Entries about a person (by identifier, through its keyed hash), by target, action and time "
        "(since <= at < until), oldest first. A person we never saw gets the empty page of a person with no entries.",
    )
    async def audit_entries(
        self,
        info: Info[Context, None],
        subject: IdentifierInput | None = None,
        targets: list[str] | None = None,
        actions: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> AuditEntryConnection:
        try:
            bounds = PageBounds(
                first=first, after=seq_of(after, field="after"), last=last, before=seq_of(before, field="before")
            )
            filters = AuditFilters(targets=targets, actions=actions, since=since, until=until)
            identifier = None if subject is None else subject.to_domain()
            found = await info.context.run(
                lambda unit: service.search(unit, subject=identifier, filters=filters, bounds=bounds)
            )
        except AuditSearchError as error:
            return _refused(DomainError(field=error.field, code=error.code, message=error.message))
        except InvalidIdentifier as error:
            return _refused(DomainError(field="subject", code=error.code, message=error.message))
        return _connection(found)

    @strawberry.field(extensions=COMPLIANCE, description="Recompute the chain; names the first bad entry.")
    async def verify_audit_log(self, info: Info[Context, None]) -> AuditVerification:
        def work(unit: UnitOfWork) -> AuditVerification:
            verdict = service.verify(unit.session, unit.keyring)
            unit.audit("audit.verify", details={"intact": verdict.intact, "checked": verdict.checked})
            return AuditVerification(
                intact=verdict.intact,
                checked=verdict.checked,
                first_bad_seq=verdict.first_bad_seq,
                problem=verdict.problem,
            )

        return await info.context.run(work)


def _to_graphql(entry: audit.AuditEntry) -> AuditEntry:
    return AuditEntry(
        seq=entry.seq,
        at=entry.at,
        actor_key_id=entry.actor_key_id,
        actor_role=entry.actor_role,
        action=entry.action,
        target=entry.target,
        details=[AuditDetail(key=k, value=None if v is None else str(v)) for k, v in sorted(entry.details.items())],
        entry_hash=entry.entry_hash.hex(),
    )


def _connection(found: AuditPage) -> AuditEntryConnection:
    return AuditEntryConnection(
        edges=[AuditEntryEdge(cursor=cursor_of(entry.seq), node=_to_graphql(entry)) for entry in found.entries],
        page_info=PageInfo(
            has_next_page=found.has_next_page,
            has_previous_page=found.has_previous_page,
            start_cursor=None if found.start_seq is None else cursor_of(found.start_seq),
            end_cursor=None if found.end_seq is None else cursor_of(found.end_seq),
        ),
        errors=[],
    )


def _refused(error: DomainError) -> AuditEntryConnection:
    return AuditEntryConnection(edges=[], page_info=EMPTY_PAGE, errors=[error])
