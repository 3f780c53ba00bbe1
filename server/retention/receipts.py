"""Closed data-subject requests and erasure receipts past their time: deleted.

A request is kept after it closed, and a receipt after its erasure, as the proof the compliance
team shows a regulator; past ``AUDIENCE_RETENTION_RECEIPT_DAYS`` they go. Neither names a person
(a request holds an identifier's keyed hash, a receipt counts), but a request's hash still links
a known identifier to the fact that someone asked. Open requests are never deleted. These tables
grow with requests, not with events, so one statement each is small.
"""

from __future__ import annotations

from server.retention.deletes import remove_rows
from server.retention.policy import Cutoffs
from server.retention.report import Category, PurgeReport
from server.runtime import UnitOfWork
from server.storage.tables import ErasureReceiptRow, SubjectRequestRow
from server.storage.upsert import table_of

__all__ = ["purge_receipts"]


def purge_receipts(unit: UnitOfWork, cutoffs: Cutoffs) -> PurgeReport:
    requests, receipts = table_of(SubjectRequestRow), table_of(ErasureReceiptRow)
    cutoff = cutoffs.receipts
    removed = {
        Category.CLOSED_REQUESTS: {requests.name: remove_rows(unit.session, requests, requests.c.closed_at < cutoff)},
        Category.ERASURE_RECEIPTS: {
            receipts.name: remove_rows(unit.session, receipts, receipts.c.completed_at < cutoff)
        },
    }
    return PurgeReport(cutoffs=cutoffs, removed=removed)
