"""Who accessed the person's data: the audit entries that name one of their subjects, or the request.

Entries are found by target through its index (``server.storage.audit_store.entries_for_targets``):
``subject:<id>`` for each of the person's subjects, and ``request:<id>`` for the request the export
answers. Each shows its seq (so an auditor can find it and verify the chain around it), time,
action, target, details (non-personal scalars by rule) and who acted as a role: the category of
recipient Art. 15(1)(c) asks for, plus the partner's name when a partner's key acted (a
recipient by name). The API key id is not shown: it names a credential, not a recipient, means
nothing to the person, and would tell a reader of the export which keys handle personal data;
the compliance team resolves it from the log when a regulator asks. Entries that no longer
decode are left out here; verification of the chain names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.audit import AuditEntry
from server.auth.principal import Role
from server.storage.audit_store import entries_for_targets
from server.storage.tables import ApiKeyRow, PartnerRow
from server.subject_access.rendering import iso

__all__ = ["accesses", "request_target", "subject_target"]


def subject_target(subject_id: int) -> str:
    return f"subject:{subject_id}"


def request_target(request_id: int) -> str:
    return f"request:{request_id}"


def accesses(session: Session, subject_ids: Sequence[int], *, request_id: int | None) -> list[dict[str, Any]]:
    """The entries, oldest first, as JSON-ready dicts."""
    targets = [subject_target(s) for s in subject_ids]
    if request_id is not None:
        targets.append(request_target(request_id))
    entries = [e for e in entries_for_targets(session, targets) if isinstance(e, AuditEntry)]
    partners = _partners_of_keys(session, {e.actor_key_id for e in entries if e.actor_role == Role.PARTNER.value})
    return [
        {
            "seq": entry.seq,
            "at": iso(entry.at),
            "actor_role": entry.actor_role,
            "partner": partners.get(entry.actor_key_id or ""),
            "action": entry.action,
            "target": entry.target,
            "details": dict(entry.details),
        }
        for entry in entries
    ]


def _partners_of_keys(session: Session, key_ids: set[str | None]) -> dict[str, str]:
    wanted = sorted(k for k in key_ids if k is not None)
    if not wanted:
        return {}
    rows = session.execute(
        select(ApiKeyRow.key_id, PartnerRow.name)
        .join(PartnerRow, PartnerRow.id == ApiKeyRow.partner_id)
        .where(ApiKeyRow.key_id.in_(wanted))
    ).all()
    return {key_id: name for key_id, name in rows}
