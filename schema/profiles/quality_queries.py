from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from schema.analytics.types import to_figure
from schema.context import Context
from schema.profiles.quality_types import (
    ANALYSTS,
    DailyVolume,
    FieldNullRate,
    IngestTallies,
    RejectCount,
    SourceQuality,
)
from server.analytics.operational import BOT_LIKE, source_people
from server.analytics.release import Figure
from server.analytics.service import asker_of
from server.frames.tallies import REJECTED_PREFIX, Outcome
from server.profiles import quality
from server.runtime import UnitOfWork

MAX_BUILD_ID = 2**63 - 1
PERIODS = ("total", "last_day")
PEOPLE_OUTCOMES = {
    "new_subjects": Outcome.NEW_SUBJECT,
    "merges": Outcome.MERGE,
    "refused_merges": Outcome.REFUSED_MERGE,
    "identity_limit_hits": Outcome.IDENTITY_LIMIT,
}
"""The ingestion outcomes that count subjects, not records, by field name (released to analysts by
``operational.source_people``)."""


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
        asker, settings = asker_of(info.context.caller), info.context.runtime.settings

        def work(unit: UnitOfWork) -> tuple[list[dict[str, Any]], dict[tuple[int, str], dict[str, Figure]]]:
            rows = list(quality.reports_for(unit.session, wanted).iter_rows(named=True))
            people = {(row["build_id"], row["source"]): _people_of(row) for row in rows}
            shown = source_people(
                unit.session, asker, people, settings=settings, noise=unit.kit.noise, as_of=unit.clock()
            )
            return rows, shown

        rows, shown = await info.context.run(work)
        return [_to_graphql(row, shown[(row["build_id"], row["source"])]) for row in rows]


def _build_number(build_id: str) -> int | None:
    """The build an ID names, or None when it can name none: only ASCII digits (``int`` also reads
    other scripts' digits) and within the 64-bit column (past it the database refuses the query)."""
    if not (build_id.isascii() and build_id.isdigit()):
        return None
    number = int(build_id)
    return number if number <= MAX_BUILD_ID else None


def _people_of(row: dict[str, Any]) -> dict[str, int]:
    """The report's counts of people: bot-like subjects, and each subject tally by period."""
    outcomes = {o["outcome"]: o for o in row["outcomes"]}
    people = {BOT_LIKE: int(row["bot_like_subjects"])}
    for name, outcome in PEOPLE_OUTCOMES.items():
        for period in PERIODS:
            people[f"{name}:{period}"] = int(outcomes.get(outcome, {}).get(period) or 0)
    return people


def _to_graphql(row: dict[str, Any], people: dict[str, Figure]) -> SourceQuality:
    return SourceQuality(
        build_id=strawberry.ID(str(row["build_id"])),
        source=row["source"],
        as_of=row["as_of"],
        rows=row["rows"],
        last_occurred_at=row["last_occurred_at"],
        last_received_at=row["last_received_at"],
        null_rates=[FieldNullRate(field=name, rate=rate) for name, rate in row["null_rates"].items()],
        ingested=_tallies(row["outcomes"], "total", people),
        ingested_last_day=_tallies(row["outcomes"], "last_day", people),
        daily_volumes=[DailyVolume(**volume) for volume in row["daily"]],
        anomalous_days=row["anomalous_days"],
        bot_like_subjects=to_figure(people[BOT_LIKE]),
    )


def _tallies(outcomes: list[dict[str, Any]], period: str, people: dict[str, Figure]) -> IngestTallies:
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
        new_subjects=to_figure(people[f"new_subjects:{period}"]),
        merges=to_figure(people[f"merges:{period}"]),
        refused_merges=to_figure(people[f"refused_merges:{period}"]),
        identity_limit_hits=to_figure(people[f"identity_limit_hits:{period}"]),
    )
