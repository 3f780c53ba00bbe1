"""What a purge removed (or, dry, would remove): rows per category and table, no one named."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from privacy.audit import DetailValue
from server.retention.policy import Cutoffs

__all__ = ["Category", "PurgeReport"]


class Category(enum.StrEnum):
    EVENTS = "events"
    ANONYMOUS_SUBJECTS = "anonymous_subjects"
    CLOSED_REQUESTS = "closed_requests"
    ERASURE_RECEIPTS = "erasure_receipts"


@dataclass(frozen=True, slots=True)
class PurgeReport:
    cutoffs: Cutoffs
    removed: Mapping[Category, Mapping[str, int]] = field(default_factory=dict)
    """Rows deleted per category, per table."""
    profile_rows_updated: int = 0
    """Profile state rows rewritten so that the state stays what the remaining events give."""
    receipts_kept: int = 0
    """Message receipts added for deleted events: a resend stays a duplicate."""
    subjects_erased: int = 0
    complete: bool = True
    """False when a run was stopped (the server shutting down) before its last partition."""
    dry_run: bool = False
    """Counted and rolled back: what a purge at the same moment would remove."""

    def plus(self, other: PurgeReport) -> PurgeReport:
        removed: dict[Category, Counter[str]] = {}
        for report in (self, other):
            for category, tables in report.removed.items():
                removed.setdefault(category, Counter()).update(tables)
        return PurgeReport(
            cutoffs=self.cutoffs,
            removed={category: dict(tables) for category, tables in removed.items()},
            profile_rows_updated=self.profile_rows_updated + other.profile_rows_updated,
            receipts_kept=self.receipts_kept + other.receipts_kept,
            subjects_erased=self.subjects_erased + other.subjects_erased,
            complete=self.complete and other.complete,
            dry_run=self.dry_run or other.dry_run,
        )

    def total(self, category: Category) -> int:
        """Rows of ``category`` removed, every table together."""
        return sum(self.removed.get(category, {}).values())

    def totals(self) -> dict[str, int]:
        """Per category, with the subjects erased: what a log line and the CLI's summary show."""
        return {category.value: self.total(category) for category in Category} | {
            "subjects_erased": self.subjects_erased
        }

    def __bool__(self) -> bool:
        return any(self.totals().values()) or self.profile_rows_updated > 0

    def details(self) -> dict[str, DetailValue]:
        """The audit entry's details: counts only, ``category.table`` keys, sorted."""
        flat: dict[str, DetailValue] = {
            f"{category.value}.{table}": count
            for category, tables in sorted(self.removed.items())
            for table, count in sorted(tables.items())
            if count
        }
        return flat | {
            "profile_rows_updated": self.profile_rows_updated,
            "receipts_kept": self.receipts_kept,
            "subjects_erased": self.subjects_erased,
            "events_before": self.cutoffs.events.isoformat(),
            "complete": self.complete,
        }
