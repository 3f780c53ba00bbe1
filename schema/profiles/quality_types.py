"""What an analyst reads of a build's data-quality report: per-source operational counts.

No subject id, no PII, no label a sender chose in clear (a source is its stored form): every
figure counts the records, days or subjects of a whole source, for operating the pipeline. The
counts of subjects (new, merged, refused a merge or a link, bot-like) are counts of people, so
for analysts they are released like every aggregate (``server.analytics.operational``: k floor,
noise, one release per build and source); admins read them exact.
"""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from schema.analytics.types import AggregateFigure
from schema.permissions import requires
from server.auth.principal import Role

ANALYSTS = requires(Role.ANALYST, Role.ADMIN)


@strawberry.type(description="The share of a source's stored events without a value for one optional field.")
class FieldNullRate:
    field: str = strawberry.field(extensions=ANALYSTS, description="topics, amount, currency, campaign or region.")
    rate: float | None = strawberry.field(extensions=ANALYSTS, description="0..1; null when no event is stored.")


@strawberry.type(description="Records rejected with one code.")
class RejectCount:
    code: str = strawberry.field(extensions=ANALYSTS, description="A reject code, as ingestion answers it.")
    count: int = strawberry.field(extensions=ANALYSTS)


@strawberry.type(description="What ingestion did with a source's records over a period, by outcome.")
class IngestTallies:
    accepted: int = strawberry.field(extensions=ANALYSTS, description="Records stored as events.")
    duplicates: int = strawberry.field(extensions=ANALYSTS, description="Records judged before: resends.")
    rejected: int = strawberry.field(extensions=ANALYSTS, description="Records rejected, all codes.")
    rejects: list[RejectCount] = strawberry.field(extensions=ANALYSTS, description="By code, most frequent first.")
    new_subjects: AggregateFigure = strawberry.field(extensions=ANALYSTS, description="Subjects created.")
    merges: AggregateFigure = strawberry.field(extensions=ANALYSTS, description="Subjects merged into another.")
    refused_merges: AggregateFigure = strawberry.field(
        extensions=ANALYSTS, description="Merges the guardrails refused."
    )
    identity_limit_hits: AggregateFigure = strawberry.field(
        extensions=ANALYSTS, description="Identifiers not linked: their subject had too many."
    )


@strawberry.type(description="A source's events on one UTC day (by event time), against the days before it.")
class DailyVolume:
    day: date = strawberry.field(extensions=ANALYSTS)
    events: int = strawberry.field(extensions=ANALYSTS)
    trailing_mean: float | None = strawberry.field(
        extensions=ANALYSTS, description="Mean of the trailing window; null when the day is not judged."
    )
    trailing_std: float | None = strawberry.field(extensions=ANALYSTS)
    anomalous: bool = strawberry.field(extensions=ANALYSTS, description="Too far from the trailing mean.")


@strawberry.type(description="One source's data quality as of a build (docs/profiles.md, Data quality).")
class SourceQuality:
    build_id: strawberry.ID = strawberry.field(extensions=ANALYSTS)
    source: str = strawberry.field(extensions=ANALYSTS, description="As stored: a declared label, else its keyed hash.")
    as_of: datetime = strawberry.field(extensions=ANALYSTS)
    rows: int = strawberry.field(extensions=ANALYSTS, description="Events stored, received by asOf.")
    last_occurred_at: datetime | None = strawberry.field(extensions=ANALYSTS)
    last_received_at: datetime | None = strawberry.field(extensions=ANALYSTS)
    null_rates: list[FieldNullRate] = strawberry.field(extensions=ANALYSTS)
    ingested: IngestTallies = strawberry.field(extensions=ANALYSTS, description="Over the whole history.")
    ingested_last_day: IngestTallies = strawberry.field(
        extensions=ANALYSTS, description="On the last complete UTC day before asOf."
    )
    daily_volumes: list[DailyVolume] = strawberry.field(extensions=ANALYSTS, description="Oldest first.")
    anomalous_days: int = strawberry.field(extensions=ANALYSTS)
    bot_like_subjects: AggregateFigure = strawberry.field(
        extensions=ANALYSTS, description="Subjects over the bot-like daily rate who sent through this source."
    )
