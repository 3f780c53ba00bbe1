"""Every table, imported here so that ``Base.metadata`` is complete for Alembic and tests."""

from server.storage.tables.access import ApiKeyRow, PartnerRow
from server.storage.tables.audit import AuditEntryRow, AuditHeadRow
from server.storage.tables.subjects import EventRow, IdentityRow, SubjectRow

__all__ = [
    "ApiKeyRow",
    "AuditEntryRow",
    "AuditHeadRow",
    "EventRow",
    "IdentityRow",
    "PartnerRow",
    "SubjectRow",
]
