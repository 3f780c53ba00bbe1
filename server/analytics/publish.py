"""Publishing the aggregates BI tools read: a fixed set, released as an analyst would get them.

BI tools never query base tables. The server computes a fixed set of aggregates (``AGGREGATES``:
a list of small functions, each turning the population as it stands into questions and their
true answers), releases each through ``server.analytics.release.release`` (k floor, secondary
suppression, sticky noise, the ledger), and replaces the rows of ``bi_aggregates`` with what was
released, all in one transaction: a reader sees the previous set or the new one, never a mix.
The SQL views (``server.storage.bi_schema``) and the Parquet export are drawn from those rows.

A published figure is the one GraphQL gives for the same question: sticky noise is keyed by the
question and the true values, not by who asks. So a GraphQL resolver answering the same thing
builds its question with ``size_question`` / ``breakdown_question``, and both get the same number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from privacy.noise import NoiseSource
from server.analytics.distributions import distribution_question
from server.analytics.histograms import cells_of_counts
from server.analytics.ledger import serialize_key
from server.analytics.population import countable_members
from server.analytics.questions import Question
from server.analytics.release import TOTAL, Answer, Asker, Figure, Truth, may_name, release
from server.auth.principal import Actor
from server.profiles.config import ProfileConfig
from server.profiles.features import features
from server.profiles.inputs import feature_inputs
from server.profiles.tiers import latest_cut_points
from server.runtime import Runtime, UnitOfWork
from server.segments.evaluate import SUBJECTS_PER_PARTITION
from server.segments.preview import BREAKDOWNS
from server.segments.store import StoredSegment, stored_segments
from server.settings import Settings
from server.storage.arrow_reads import SessionReader
from server.storage.bi_schema import SEGMENT_BREAKDOWN, SEGMENT_SIZE
from server.storage.tables import BiAggregateRow, SegmentRow

__all__ = [
    "AGGREGATES",
    "BI_PUBLISHER",
    "Aggregate",
    "Population",
    "Published",
    "breakdown_question",
    "publish",
    "publish_when_due",
    "publisher_settings",
    "segment_breakdowns",
    "segment_sizes_published",
    "size_question",
]

BI_PUBLISHER: Final = Asker(key_id="bi-publisher", may_ask_exact=False)
BI_ACTOR: Final = Actor(key_id=None, role="bi-publisher")
UNLIMITED_RELEASES: Final = 2**62
COUNTED: Final = pl.Schema(
    {"segment_id": pl.Int64(), "dimension": pl.String(), "cell": pl.String(), "len": pl.UInt32()}
)


@dataclass(frozen=True, slots=True)
class Population:
    """What the aggregate functions read, in the publishing transaction."""

    session: Session
    segments: list[StoredSegment]
    members: pl.DataFrame
    """(segment_id, subject_id) of every countable member (``population.countable_members``)."""
    sizes: dict[int, int]
    """Each segment's countable members, counted from ``members``: one read, so that a breakdown's
    cells never add up to more than its total (two reads could straddle a consent withdrawal)."""
    versions: dict[int, int]
    """Each segment's rule version: a question names the segment by id and version."""
    as_of: datetime
    profiles: ProfileConfig
    settings: Settings
    noise: NoiseSource

    @classmethod
    def read(
        cls, session: Session, *, as_of: datetime, profiles: ProfileConfig, settings: Settings, noise: NoiseSource
    ) -> Population:
        segments = stored_segments(session)
        members = countable_members(SessionReader(session), [segment.id for segment in segments])
        counted = dict(members.group_by("segment_id").len().iter_rows())
        sizes = {segment.id: int(counted.get(segment.id, 0)) for segment in segments}
        versions = {int(row.id): int(row.version) for row in session.execute(select(SegmentRow.id, SegmentRow.version))}
        return cls(session, segments, members, sizes, versions, as_of, profiles, settings, noise)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One question to release and publish."""

    aggregate: str
    label: str
    question: Question
    truth: Truth
    dimension: str | None = None
    cells_only: bool = False
    """Publish the cells but not the total: the total is published already as another question,
    and a second noisy draw of the same count would let a reader average the two."""


AggregateSource = Callable[[Population], Iterable[Aggregate]]


def size_question(segment_id: int) -> Question:
    return Question.of(SEGMENT_SIZE, segment=segment_id)


def breakdown_question(segment_id: int, version: int, dimension: str) -> Question:
    """GraphQL's ``featureDistribution`` question: the same numbers over SQL and over GraphQL."""
    return distribution_question(dimension, (segment_id, version))


def segment_sizes_published(population: Population) -> list[Aggregate]:
    """Every segment's countable members (a single count: sensitivity 1)."""
    return [
        Aggregate(SEGMENT_SIZE, segment.name, size_question(segment.id), Truth(population.sizes[segment.id]))
        for segment in population.segments
    ]


def member_traits(session: Session, members: pl.DataFrame, *, as_of: datetime, config: ProfileConfig) -> pl.DataFrame:
    """(segment_id, dimension, cell, len): members counted by each value of each ``BREAKDOWNS``
    feature, as the profile shows it now; members without a value are in no cell."""
    subjects = members["subject_id"].unique().sort().to_list()
    cut_points = latest_cut_points(session)
    parts = [
        features(
            feature_inputs(session, subjects[start : start + SUBJECTS_PER_PARTITION]),
            as_of=as_of,
            config=config,
            cut_points=cut_points,
        )
        .select("subject_id", *BREAKDOWNS)
        .collect()
        for start in range(0, len(subjects), SUBJECTS_PER_PARTITION)
    ]
    if not parts:
        return COUNTED.to_frame()
    return (
        members.join(pl.concat(parts), on="subject_id", how="inner")
        .unpivot(index="segment_id", on=list(BREAKDOWNS), variable_name="dimension", value_name="cell")
        .drop_nulls("cell")
        .group_by("segment_id", "dimension", "cell")
        .len()
        .sort("segment_id", "dimension", "cell")
        .cast(COUNTED)
    )


def segment_breakdowns(population: Population) -> list[Aggregate]:
    """Each segment's members by lifecycle, value tier, age band and region (a breakdown with its
    total: sensitivity 2), the cells only published."""
    counted = member_traits(population.session, population.members, as_of=population.as_of, config=population.profiles)
    cells: dict[tuple[int, str], dict[str, int]] = {}
    for segment_id, dimension, cell, members_in in counted.iter_rows():  # a few rows per segment
        cells.setdefault((segment_id, dimension), {})[cell] = members_in
    return [
        Aggregate(
            SEGMENT_BREAKDOWN,
            segment.name,
            breakdown_question(segment.id, population.versions[segment.id], dimension),
            Truth(
                population.sizes[segment.id],
                cells_of_counts(
                    dimension,
                    cells.get((segment.id, dimension), {}),
                    population.sizes[segment.id],
                    named=may_name(
                        size_question(segment.id), settings=population.settings, noise=population.noise, exact=False
                    ),
                ),
                sensitivity=2,
                # the segment's size: one draw, the one its published size and segmentSize show
                same_as={TOTAL: (size_question(segment.id), TOTAL)},
            ),
            dimension=dimension,
            cells_only=True,
        )
        for segment in population.segments
        for dimension in BREAKDOWNS
    ]


AGGREGATES: Final[tuple[AggregateSource, ...]] = (segment_sizes_published, segment_breakdowns)
"""What is published, in order. Overlaps, distributions and trends join as they are written."""


def publisher_settings(settings: Settings) -> Settings:
    """The settings the publisher releases under: its count of releases is not limited.

    The per-key limit exists to stop one client from asking question after slightly different
    question and differencing the answers. The publisher asks no such thing: its questions are a
    fixed set, the same every time, refreshed on a schedule, and every reader gets the same rows;
    a repeat over unchanged data is free anyway, and a new release only follows a change in the
    data. With differential privacy on, its ε budget stays as configured: past it, publishing is
    refused and the previous rows stay.
    """
    return settings.model_copy(update={"analytics_releases_per_period": UNLIMITED_RELEASES})


@dataclass(frozen=True, slots=True)
class Published:
    aggregates: int
    rows: int
    suppressed: int
    as_of: datetime


def _rows_of(aggregate: Aggregate, answer: Answer) -> list[dict[str, Any]]:
    figures: list[tuple[str | None, Figure]] = [] if aggregate.cells_only else [(None, answer.total)]
    figures.extend(sorted(answer.cells.items()))
    return [
        {
            "aggregate": aggregate.aggregate,
            "subject_label": aggregate.label,
            "dimension": aggregate.dimension,
            "cell": cell,
            "value": figure.value,
            "suppressed": figure.reason,
            "low": figure.low,
            "high": figure.high,
            "method": answer.method.value,
            "noise_scale": answer.noise_scale,
            "as_of": answer.as_of,
        }
        for cell, figure in figures
    ]


def publish(runtime: Runtime, *, sources: Sequence[AggregateSource] = AGGREGATES) -> Published:
    """Release every aggregate of ``sources`` and replace the published rows with them, in one
    transaction. Raises ``BudgetExhausted`` (differential privacy on, ε spent): nothing changes."""
    with runtime.unit_of_work(BI_ACTOR) as unit:
        serialize_key(unit.session, BI_PUBLISHER.key_id)  # two publishers at once would each delete, then both insert
        return _publish_in(unit, publisher_settings(runtime.settings), sources)


def publish_when_due(runtime: Runtime, *, every: timedelta) -> Published | None:
    """``publish``, unless the rows were published less than ``every`` ago, by any process (every
    server process runs a worker, and the rows are shared): then None, and nothing is done."""
    with runtime.unit_of_work(BI_ACTOR) as unit:
        serialize_key(unit.session, BI_PUBLISHER.key_id)  # checked under the lock: two processes publish once
        latest = unit.session.scalar(select(func.max(BiAggregateRow.as_of)))
        if latest is not None and unit.clock() - latest < every:
            return None
        return _publish_in(unit, publisher_settings(runtime.settings), AGGREGATES)


def _publish_in(unit: UnitOfWork, settings: Settings, sources: Sequence[AggregateSource]) -> Published:
    session = unit.session
    as_of = unit.clock()
    population = Population.read(session, as_of=as_of, profiles=unit.profiles, settings=settings, noise=unit.kit.noise)
    rows: list[dict[str, Any]] = []
    released = 0
    for source in sources:
        for aggregate in source(population):
            answer = release(
                session,
                BI_PUBLISHER,
                aggregate.question,
                aggregate.truth,
                settings=settings,
                noise=unit.kit.noise,
                as_of=as_of,
            )
            rows.extend(_rows_of(aggregate, answer))
            released += 1
    session.execute(delete(BiAggregateRow))
    if rows:
        session.execute(insert(BiAggregateRow), rows)
    return Published(released, len(rows), sum(row["value"] is None for row in rows), as_of)
