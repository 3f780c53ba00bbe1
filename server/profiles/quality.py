"""The data-quality report of a build: per source, what was stored, how complete, how fresh, how
steady, and what ingestion refused — operational counts an analyst reads, never a person.

``quality_report`` reads in bulk and computes with Polars:

- from ``events`` (those received by ``as_of``), one database scan grouped by source and event
  day: ``rows``; the null rate of each optional field (``OPTIONAL_FIELDS``: the share of rows
  without it); freshness (the latest ``occurred_at`` and ``received_at``); and the daily volumes;
- daily volumes (by the event's own UTC day) judged for the ``AnomalyRules.days`` complete days
  before ``as_of``'s day: a day is anomalous when its volume is further from the mean of the
  ``trailing_days`` days before it than ``deviations`` times their spread, where the spread is
  their sample standard deviation but at least the square root of their mean (the noise of a
  count), so a perfectly steady source is not flagged for one event more. A day with no event
  counts as zero: a source that goes silent is flagged. A day is judged only once its source
  has a full trailing window behind it (its first event at least ``trailing_days`` before);
- from ``ingest_tallies`` (``server.ingest.tallies``), each outcome's count over the whole
  history and over the last complete day (the day before ``as_of``'s): records accepted,
  duplicates, rejects by code, new subjects, merges, refused merges, identity-limit hits;
- from ``profile_daily``, the subjects with a day of more than ``bot_events_per_day`` events
  (``bot_like_days``): counted per source they sent events through on such a day. Only a count
  leaves this module; ``bot_like_days`` is the rule, for the build to keep them out of interests.

Sources appear in their stored form (declared, or a keyed hash: ``privacy.labels``). A report is
stored per build (``store_report``) and read back whole (``reports_for``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import polars as pl
from sqlalchemy import String, cast, func, insert, select
from sqlalchemy.orm import Session

from server.frames.profiles import TIMESTAMP
from server.profiles.config import ProfileConfig
from server.storage.lookup import frame_where_in
from server.storage.tables import DataQualityReportRow, EventRow, IngestTallyRow, ProfileDailyRow

__all__ = [
    "OPTIONAL_FIELDS",
    "REPORT_SCHEMA",
    "AnomalyRules",
    "bot_like_days",
    "judged_volumes",
    "quality_report",
    "reports_for",
    "store_report",
]

OPTIONAL_FIELDS: Final = ("topics", "amount", "currency", "campaign", "region")
"""The event columns a sender may leave out; every other column is required to store an event."""

OUTCOME_COUNT: Final = pl.Struct({"outcome": pl.String(), "total": pl.Int64(), "last_day": pl.Int64()})
DAILY_VOLUME: Final = pl.Struct(
    {
        "day": pl.Date(),
        "events": pl.Int64(),
        "trailing_mean": pl.Float64(),  # null when the day is not judged (too little history)
        "trailing_std": pl.Float64(),
        "anomalous": pl.Boolean(),
    }
)
REPORT_SCHEMA: Final = pl.Schema(
    {
        "source": pl.String(),
        "as_of": TIMESTAMP,
        "rows": pl.Int64(),
        "last_occurred_at": TIMESTAMP,  # null when the source has no stored event
        "last_received_at": TIMESTAMP,
        "null_rates": pl.Struct({name: pl.Float64() for name in OPTIONAL_FIELDS}),  # null when no rows
        "outcomes": pl.List(OUTCOME_COUNT),  # by outcome name (``server.frames.tallies``)
        "daily": pl.List(DAILY_VOLUME),  # oldest first
        "anomalous_days": pl.Int64(),
        "bot_like_subjects": pl.Int64(),
    }
)
"""One row per source that stored an event or has a tally."""

_EPOCH: Final = date(1970, 1, 1)
_VOLUME_SCHEMA: Final = pl.Schema(
    {
        "source": pl.String(),
        "day": pl.String(),  # ISO date, as both backends print it
        "events": pl.Int64(),
        **{name: pl.Int64() for name in OPTIONAL_FIELDS},  # rows where the field is present
        "last_occurred_at": TIMESTAMP,
        "last_received_at": TIMESTAMP,
    }
)
_TALLY_READ: Final = pl.Schema({"source": pl.String(), "day": pl.Int32(), "outcome": pl.String(), "count": pl.Int64()})


@dataclass(frozen=True, slots=True)
class AnomalyRules:
    """Which days are judged and how far is too far (module docstring)."""

    days: int = 14
    trailing_days: int = 14
    deviations: float = 3.0


def quality_report(
    session: Session, *, as_of: datetime, config: ProfileConfig, rules: AnomalyRules = AnomalyRules()
) -> pl.DataFrame:
    """Every source's report as of ``as_of`` (``REPORT_SCHEMA``), in the caller's transaction."""
    today = _day_number(as_of)
    volumes = _volumes(session, as_of)
    per_source = volumes.group_by("source").agg(
        pl.col("events").sum().alias("rows"),
        pl.col("last_occurred_at").max(),
        pl.col("last_received_at").max(),
        *(pl.col(name).sum() for name in OPTIONAL_FIELDS),
    )
    null_rates = pl.struct(
        [pl.when(pl.col("rows") > 0).then(1.0 - pl.col(name) / pl.col("rows")).alias(name) for name in OPTIONAL_FIELDS]
    ).alias("null_rates")
    daily = (
        judged_volumes(volumes.select("source", "day", "events"), today=today, rules=rules)
        .group_by("source")
        .agg(
            pl.struct(list(DAILY_VOLUME.to_schema())).alias("daily"),
            pl.col("anomalous").sum().cast(pl.Int64).alias("anomalous_days"),
        )
    )
    outcomes = _outcomes(_tallies(session, today), last_day=today - 1)
    bots = _bot_like_by_source(session, config.bot_events_per_day, as_of=as_of)
    sources = pl.concat([per_source.select("source"), outcomes.select("source")]).unique()
    return (
        sources.join(per_source, on="source", how="left")
        .join(daily, on="source", how="left")
        .join(outcomes, on="source", how="left")
        .join(bots, on="source", how="left")
        .select(
            "source",
            pl.lit(as_of.astimezone(UTC), dtype=TIMESTAMP).alias("as_of"),
            pl.col("rows").fill_null(0),
            "last_occurred_at",
            "last_received_at",
            null_rates,
            pl.col("outcomes").fill_null(pl.lit([], dtype=pl.List(OUTCOME_COUNT))),
            pl.col("daily").fill_null(pl.lit([], dtype=pl.List(DAILY_VOLUME))),
            pl.col("anomalous_days").fill_null(0),
            pl.col("bot_like_subjects").fill_null(0),
        )
        .cast(REPORT_SCHEMA)
        .sort("source")
    )


def judged_volumes(volumes: pl.DataFrame, *, today: int, rules: AnomalyRules) -> pl.DataFrame:
    """(source, day, events, trailing_mean, trailing_std, anomalous) for the ``rules.days`` days
    before ``today`` (days since 1970-01-01), from ``volumes``: (source, day as ISO text, events)
    over the whole history, one row per source and day with events."""
    counted = volumes.select("source", pl.col("day").str.to_date(), "events")
    first_days = counted.group_by("source").agg(pl.col("day").min().alias("first_day"))
    start = today - rules.days - rules.trailing_days
    calendar = pl.DataFrame({"day": pl.date_range(_date(start), _date(today - 1), eager=True)})
    window = rules.trailing_days
    spread = pl.max_horizontal(pl.col("trailing_std"), pl.col("trailing_mean").sqrt())
    judged = pl.col("first_day") <= pl.col("day") - timedelta(days=window)
    return (
        first_days.join(calendar, how="cross")
        .join(counted, on=["source", "day"], how="left")
        .with_columns(pl.col("events").fill_null(0))
        .sort("source", "day")
        .with_columns(
            pl.col("events").cast(pl.Float64).shift(1).rolling_mean(window).over("source").alias("trailing_mean"),
            pl.col("events").cast(pl.Float64).shift(1).rolling_std(window).over("source").alias("trailing_std"),
        )
        .with_columns(
            pl.when(judged).then(pl.col("trailing_mean")).alias("trailing_mean"),
            pl.when(judged).then(pl.col("trailing_std")).alias("trailing_std"),
        )
        .with_columns(
            ((pl.col("events") - pl.col("trailing_mean")).abs() > rules.deviations * spread)
            .fill_null(False)
            .alias("anomalous")
        )
        .filter(pl.col("day") >= _date(today - rules.days))
        .select("source", *list(DAILY_VOLUME.to_schema()))
    )


def bot_like_days(session: Session, *, threshold: int, through_day: int) -> pl.DataFrame:
    """(subject_id, day, events) of every subject's day with more than ``threshold`` events, up
    to ``through_day`` (days since 1970-01-01), summed over types and channels by the database:
    only the flagged days leave it. The subject ids are for the build; never report them."""
    daily = ProfileDailyRow.__table__.c
    total = func.sum(daily.events)
    rows = session.execute(
        select(daily.subject_id, daily.day, total)
        .where(daily.day <= through_day)
        .group_by(daily.subject_id, daily.day)
        .having(total > threshold)
    ).all()
    schema = {"subject_id": pl.Int64(), "day": pl.Int32(), "events": pl.Int64()}
    return pl.DataFrame([tuple(row) for row in rows], schema=schema, orient="row")


def store_report(session: Session, build_id: int, report: pl.DataFrame) -> None:
    """Write ``report`` (``REPORT_SCHEMA``) as ``build_id``'s, in the caller's transaction."""
    if report.height == 0:
        return
    metrics = pl.struct(
        "null_rates",
        "outcomes",
        pl.col("daily").list.eval(pl.element().struct.with_fields(pl.field("day").dt.to_string())),
    )
    rows = report.select(
        pl.lit(build_id, dtype=pl.Int64).alias("build_id"),
        "source",
        "as_of",
        "rows",
        "last_occurred_at",
        "last_received_at",
        "anomalous_days",
        "bot_like_subjects",
        metrics.alias("metrics"),
    ).to_dicts()
    session.execute(insert(DataQualityReportRow), rows)


def reports_for(session: Session, build_id: int | None = None) -> pl.DataFrame:
    """``build_id``'s stored report: ``build_id`` then the ``REPORT_SCHEMA`` columns, by source;
    empty when that build stored none. ``None``: the latest build that stored one, which is the
    latest that ended well (a build stores its report as it ends), so a running or failed build
    never hides the last good report."""
    if build_id is None:
        build_id = session.scalar(select(func.max(DataQualityReportRow.build_id)))
    stored = session.scalars(
        select(DataQualityReportRow)
        .where(DataQualityReportRow.build_id == build_id)
        .order_by(DataQualityReportRow.source)
    ).all()
    report = _from_stored(
        [
            {
                "source": row.source,
                "as_of": row.as_of,
                "rows": row.rows,
                "last_occurred_at": row.last_occurred_at,
                "last_received_at": row.last_received_at,
                "anomalous_days": row.anomalous_days,
                "bot_like_subjects": row.bot_like_subjects,
                **row.metrics,
            }
            for row in stored
        ]
    )
    return report.select(pl.lit(build_id, dtype=pl.Int64).alias("build_id"), pl.all())


def _from_stored(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    stored_schema = pl.Schema(
        {
            **REPORT_SCHEMA,
            "daily": pl.List(pl.Struct({**DAILY_VOLUME.to_schema(), "day": pl.String()})),
        }
    )
    return (
        pl.DataFrame(rows, schema=stored_schema)
        .with_columns(pl.col("daily").list.eval(pl.element().struct.with_fields(pl.field("day").str.to_date())))
        .cast(REPORT_SCHEMA)
    )


def _volumes(session: Session, as_of: datetime) -> pl.DataFrame:
    """Events received by ``as_of`` by source and day: one scan, a row per source and day."""
    events = EventRow.__table__.c
    day = cast(func.date(events.occurred_at), String)
    rows = session.execute(
        select(
            events.source,
            day,
            func.count(),
            *(func.count(events[name]) for name in OPTIONAL_FIELDS),
            func.max(events.occurred_at),
            func.max(events.received_at),
        )
        .where(events.received_at <= as_of)
        .group_by(events.source, day)
    ).all()
    return pl.DataFrame([tuple(row) for row in rows], schema=_VOLUME_SCHEMA, orient="row")


def _tallies(session: Session, through_day: int) -> pl.DataFrame:
    tallies = IngestTallyRow.__table__.c
    rows = session.execute(
        select(tallies.source, tallies.day, tallies.outcome, tallies["count"]).where(tallies.day <= through_day)
    ).all()
    return pl.DataFrame([tuple(row) for row in rows], schema=_TALLY_READ, orient="row")


def _outcomes(tallies: pl.DataFrame, *, last_day: int) -> pl.DataFrame:
    """(source, outcomes): each outcome's count over all days and on ``last_day``, by outcome."""
    return (
        tallies.group_by("source", "outcome")
        .agg(
            pl.col("count").sum().alias("total"),
            pl.col("count").filter(pl.col("day") == last_day).sum().alias("last_day"),
        )
        .sort("source", "outcome")
        .group_by("source", maintain_order=True)
        .agg(pl.struct("outcome", "total", "last_day").alias("outcomes"))
    )


def _bot_like_by_source(session: Session, threshold: int, *, as_of: datetime) -> pl.DataFrame:
    """(source, bot_like_subjects): subjects with a bot-like day who sent events through the
    source on such a day; one subject may count for several sources."""
    flagged = bot_like_days(session, threshold=threshold, through_day=_day_number(as_of))
    schema = pl.Schema({"subject_id": pl.Int64(), "source": pl.String(), "occurred_at": TIMESTAMP})
    events = frame_where_in(
        session,
        "SELECT subject_id, source, occurred_at FROM events WHERE subject_id {in}",
        flagged["subject_id"].unique().sort().to_list(),
        schema,
    )
    return (
        events.with_columns(pl.col("occurred_at").dt.date().cast(pl.Int32).alias("day"))
        .join(flagged, on=["subject_id", "day"], how="semi")
        .group_by("source")
        .agg(pl.col("subject_id").n_unique().cast(pl.Int64).alias("bot_like_subjects"))
    )


def _day_number(at: datetime) -> int:
    return (at.astimezone(UTC).date() - _EPOCH).days


def _date(day_number: int) -> date:
    return _EPOCH + timedelta(days=day_number)
