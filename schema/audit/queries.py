from __future__ import annotations

import strawberry
from strawberry.types import Info

from privacy import audit
from schema.audit.types import COMPLIANCE, AuditDetail, AuditEntry, AuditVerification
from schema.context import Context
from server.audit import service
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
