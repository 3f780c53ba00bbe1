"""How long each category of data is kept, and the cutoffs that follows from a moment.

The time-to-live of each category comes from the settings (``AUDIENCE_RETENTION_*``); the moment
from the runtime's clock, so a test moves time instead of waiting for it. Events expire by whole
UTC days: the cutoff is a midnight, so the daily profile rollups (``profile_daily``, keyed by
day) are cut at exactly the same place as the events they count, and a build from the remaining
events gives the state the purge leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from server.settings import Settings

__all__ = ["Cutoffs", "RetentionPolicy", "retention_policy"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What is older than these is expired (each a strict "before")."""

    events: datetime
    """A UTC midnight: events that occurred before it."""
    anonymous_subjects: datetime
    """Subjects without an identifier created before it, with no event occurred or received since."""
    receipts: datetime
    """Requests closed and erasure receipts completed before it."""

    @property
    def events_day(self) -> int:
        """``events`` as days since 1970-01-01, the ``day`` of the daily rollups."""
        return (self.events - EPOCH).days


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    events_days: int
    anonymous_subject_days: int
    receipt_days: int

    def cutoffs(self, now: datetime) -> Cutoffs:
        """Events of today's UTC day and the ``events_days`` days before it are kept."""
        if now.tzinfo is None:
            raise ValueError("naive datetimes are refused; use timezone-aware UTC")
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return Cutoffs(
            events=today - timedelta(days=self.events_days),
            anonymous_subjects=now - timedelta(days=self.anonymous_subject_days),
            receipts=now - timedelta(days=self.receipt_days),
        )


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        events_days=settings.retention_events_days,
        anonymous_subject_days=settings.retention_anonymous_subject_days,
        receipt_days=settings.retention_receipt_days,
    )
