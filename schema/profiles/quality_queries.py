from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.profiles.quality_types import (
    ANALYSTS,
    DailyVolume,
    FieldNullRate,
    IngestTallies,
    RejectCount,
    SourceQuality,
)
from server.frames.tallies import REJECTED_PREFIX, Outcome
from server.profiles import quality

MAX_BUILD_ID = 2**63 - 1


@strawberry.type
class QualityQueries:
    @strawberry.field(
        extensions=ANALYSTS,
        description="A build's data-quality report, one entry per source; the latest report when "
        "buildId is omitted, empty when that build stored none.",
    )
    async def data_quality(
        self, info: Info[Context, None], build_id: strawberry.ID | None = None
    ) -> list[SourceQuality]:
        wanted = None if build_id is None else _build_number(build_id)
        if build_id is not None and wanted is None:
            return []
        report = await info.context.run(lambda unit: quality.reports_for(unit.session, wanted))
        return [_to_graphql(row) for row in report.iter_rows(named=True)]


def _build_number(build_id: str) -> int | None:
    """The build an ID names, or None when it can name none: only ASCII digits (``int`` also reads
    other scripts' digits) and within the 64-bit column (past it the database refuses the query)."""
    if not (build_id.isascii() and build_id.isdigit()):
        return None
    number = int(build_id)
    return number if number <= MAX_BUILD_ID else None


def _to_graphql(row: dict[str, Any]) -> SourceQuality:
    return SourceQuality(
        build_id=strawberry.ID(str(row["build_id"])),
        source=row["source"],
        as_of=row["as_of"],
        rows=row["rows"],
        last_occurred_at=row["last_occurred_at"],
        last_received_at=row["last_received_at"],
        null_rates=[FieldNullRate(field=name, rate=rate) for name, rate in row["null_rates"].items()],
        ingested=_tallies(row["outcomes"], "total"),
        ingested_last_day=_tallies(row["outcomes"], "last_day"),
        daily_volumes=[DailyVolume(**volume) for volume in row["daily"]],
        anomalous_days=row["anomalous_days"],
        bot_like_subjects=row["bot_like_subjects"],
    )


def _tallies(outcomes: list[dict[str, Any]], period: str) -> IngestTallies:
    counts = {o["outcome"]: o[period] for o in outcomes}
    rejects = sorted(
        (
            RejectCount(code=name.removeprefix(REJECTED_PREFIX), count=count)
            for name, count in counts.items()
            if name.startswith(REJECTED_PREFIX) and count
        ),
        key=lambda reject: (-reject.count, reject.code),
    )
    return IngestTallies(
        accepted=counts.get(Outcome.ACCEPTED, 0),
        duplicates=counts.get(Outcome.DUPLICATE, 0),
        rejected=sum(reject.count for reject in rejects),
        rejects=rejects,
        new_subjects=counts.get(Outcome.NEW_SUBJECT, 0),
        merges=counts.get(Outcome.MERGE, 0),
        refused_merges=counts.get(Outcome.REFUSED_MERGE, 0),
        identity_limit_hits=counts.get(Outcome.IDENTITY_LIMIT, 0),
    )
