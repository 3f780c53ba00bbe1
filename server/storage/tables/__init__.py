"""Every table, imported here so that ``Base.metadata`` is complete for Alembic and tests."""

from server.storage.tables.access import ApiKeyRow, PartnerRow
from server.storage.tables.analytics import AnalyticsReleaseRow, BiAggregateRow, SegmentSketchRow
from server.storage.tables.audit import AuditEntryRow, AuditHeadRow
from server.storage.tables.compliance import ErasureReceiptRow, SubjectRequestRow, SubjectRestrictionRow
from server.storage.tables.identity import DerivedRebuildRow, IdentityMergeRow, SubjectTraitsRow
from server.storage.tables.keys import KeyringFingerprintRow
from server.storage.tables.privacy import (
    ConsentRecordRow,
    ConsentStateRow,
    SubjectKeyRow,
    SubjectPiiRow,
    SuppressionRow,
)
from server.storage.tables.profiles import (
    ProfileBuildRow,
    ProfileDailyRow,
    ProfileInterestRow,
    ProfileSummaryRow,
)
from server.storage.tables.quality import DataQualityReportRow, IngestTallyRow
from server.storage.tables.segments import (
    GrantAudienceRow,
    GrantChangeRow,
    SegmentGrantRow,
    SegmentMembershipRow,
    SegmentRow,
    TrustedDocumentRow,
)
from server.storage.tables.subjects import EventRow, IdentityRow, MessageReceiptRow, SubjectRow

__all__ = [
    "AnalyticsReleaseRow",
    "ApiKeyRow",
    "AuditEntryRow",
    "AuditHeadRow",
    "BiAggregateRow",
    "ConsentRecordRow",
    "ConsentStateRow",
    "DataQualityReportRow",
    "DerivedRebuildRow",
    "ErasureReceiptRow",
    "EventRow",
    "GrantAudienceRow",
    "GrantChangeRow",
    "IdentityMergeRow",
    "IdentityRow",
    "IngestTallyRow",
    "KeyringFingerprintRow",
    "MessageReceiptRow",
    "PartnerRow",
    "ProfileBuildRow",
    "ProfileDailyRow",
    "ProfileInterestRow",
    "ProfileSummaryRow",
    "SegmentGrantRow",
    "SegmentMembershipRow",
    "SegmentRow",
    "SegmentSketchRow",
    "SubjectKeyRow",
    "SubjectPiiRow",
    "SubjectRequestRow",
    "SubjectRestrictionRow",
    "SubjectRow",
    "SubjectTraitsRow",
    "SuppressionRow",
    "TrustedDocumentRow",
]
