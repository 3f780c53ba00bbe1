"""An objection to processing for direct marketing (Art. 21(2)-(3)): advertising stops at once.

It is recorded in the consent ledger as what it means, advertising withdrawn, with the policy
version ``art21_objection`` (``privacy.consent.PrivacySignal.OBJECTION``, like GPC), in the same
transaction as the derived state, so the very next query (``subjects_allowed`` for advertising,
with or without a partner) leaves the person out. Other purposes are untouched. The person's
active subjects are the ones recorded: a merged fragment holds no consent state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from sqlalchemy import select

from privacy.consent import NO_PARTNER, ConsentPurpose, LegalBasis, PrivacySignal
from server.consent.service import LEDGER_SCHEMA, check_labels, record_frame
from server.runtime import UnitOfWork
from server.storage.tables import SubjectRow

__all__ = ["object_to_advertising"]

CHUNK = 5_000


def object_to_advertising(unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None) -> int:
    """Withdraw ``advertising`` for the active subjects of ``subject_ids``; returns how many."""
    source = "compliance" if request_id is None else f"request:{request_id}"
    check_labels(source=source, policy_version=PrivacySignal.OBJECTION.value)
    active = _active(unit, subject_ids)
    now = unit.clock()
    record_frame(
        unit.session,
        pl.DataFrame(
            {
                "subject_id": active,
                "purpose": ConsentPurpose.ADVERTISING.value,
                "partner_id": NO_PARTNER,
                "granted": False,
                "legal_basis": LegalBasis.CONSENT.value,
                "source": source,
                "policy_version": PrivacySignal.OBJECTION.value,
                "recorded_at": now,
            },
            schema=LEDGER_SCHEMA,
        ),
    )
    unit.audit(
        "objection.recorded",
        target=f"request:{request_id}" if request_id is not None else None,
        details={"subjects": len(active), "purpose": ConsentPurpose.ADVERTISING.value},
    )
    return len(active)


def _active(unit: UnitOfWork, subject_ids: Sequence[int]) -> list[int]:
    ids = sorted(set(subject_ids))
    found: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        found.update(
            unit.session.scalars(
                select(SubjectRow.id).where(
                    SubjectRow.id.in_(ids[start : start + CHUNK]), SubjectRow.status == "active"
                )
            )
        )
    return sorted(found)
