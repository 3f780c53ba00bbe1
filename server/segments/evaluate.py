"""Evaluating segments: the whole population in batch, or given subjects in real time.

Who is evaluated: subjects with profile state that grant ``profiling`` and are under no
restriction, as of one moment (``server.profiles.store.consenting``); among them, those with a
profile as of that moment (``rule_frame``). Anyone else in the scope who holds a stay leaves it.

One scope at a time (``evaluate_scope``): read its stored stays and its subjects' profile inputs,
compute the rule frame once, fill one boolean column per segment in dependency order (a failing
segment keeps its stored members and the others go on), write the differences
(``server.segments.memberships``) and bring every active grant's audience up to date.

- ``evaluate_population``: every subject, partition by partition (``server.profiles.partitions``),
  each partition one unit of work holding the segment writers' turn; before, the segments
  evaluated are marked as started (visible while it runs); after, their counts and statuses.
- ``evaluate_subjects``: the given subjects inside the caller's unit of work (the real-time path
  after an ingest batch or a consent change: ``server.segments.drain``).
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from polars.exceptions import PolarsError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.principal import SYSTEM_ACTOR
from server.observability.logs import failure_fields
from server.profiles.features import FeatureInputs
from server.profiles.inputs import feature_inputs
from server.profiles.partitions import Partition, partitions_of
from server.profiles.tiers import latest_cut_points
from server.runtime import Runtime, UnitOfWork
from server.segments.memberships import MEMBER_SCHEMA, stored_members, update_audiences, write_stays
from server.segments.plan import FailureCode, Plan, plan_of, swept
from server.segments.rule_frame import rule_frame, segment_column
from server.segments.rules import Rule
from server.segments.scope import MAX_LISTED, Scope
from server.segments.store import (
    SegmentStatus,
    StoredSegment,
    add_member_counts,
    clear_started,
    mark_started,
    record_evaluated,
    record_failed,
    recount_members,
    stored_segments,
)
from server.storage.locks import serialize_segment_evaluation
from server.storage.restrictions import may_profile
from server.storage.tables import ProfileSummaryRow
from server.taxonomy.taxonomy import Taxonomy, taxonomy_for

__all__ = [
    "SUBJECTS_PER_PARTITION",
    "EvaluationRun",
    "Selection",
    "evaluate_population",
    "evaluate_scope",
    "evaluate_subjects",
    "evaluated_subjects",
    "population_partitions",
    "scope_inputs",
]

logger = logging.getLogger("audience.segments")

SUBJECTS_PER_PARTITION = 100_000
"""Profiles per batch partition: bounds memory (the rule frame of 100,000 subjects is tens of MB)
and how long one partition holds the segment writers' turn."""


class Selection(enum.StrEnum):
    ALL = "all"
    TIME_DEPENDENT = "time_dependent"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class EvaluationRun:
    segments: int
    failed: dict[int, str]
    partitions: int
    changes: int
    duration_ms: int


def evaluated_subjects(session: Session, scope: Scope) -> list[int]:
    """The scope's subjects that segments evaluate: profile state, ``profiling`` consent, no restriction."""
    statement, params = scope.query(
        f"SELECT s.subject_id FROM {ProfileSummaryRow.__tablename__} s WHERE {scope.condition('s.subject_id')} "
        f"AND {may_profile('s.subject_id')} ORDER BY s.subject_id"
    )
    return [int(row[0]) for row in session.execute(statement, params)]


def population_partitions(session: Session) -> list[Partition]:
    """The partitions a whole-population read goes through: one per ``SUBJECTS_PER_PARTITION``
    profiles (evaluations, previews and analysts' distributions all read the population so)."""
    profiles = int(session.scalar(select(func.count()).select_from(ProfileSummaryRow)) or 0)
    return partitions_of(max(1, math.ceil(profiles / SUBJECTS_PER_PARTITION)))


def scope_inputs(session: Session, scope: Scope, *, within: pl.Series | None = None) -> FeatureInputs:
    """The feature inputs of the scope's evaluated subjects (of those among ``within``, when given).

    A scope of everyone (the single partition of a population under ``SUBJECTS_PER_PARTITION``)
    scans the state tables instead of looking its subjects up (``read_state``), unless they are
    few enough for one lookup."""
    subjects = pl.Series("subject_id", evaluated_subjects(session, scope), pl.Int64())
    if within is not None:
        subjects = subjects.filter(subjects.is_in(within.implode()))
    everyone = scope.partition is not None and scope.partition.count == 1 and subjects.len() > MAX_LISTED
    return feature_inputs(session, subjects.to_list(), everyone=everyone)


def evaluate_scope(
    unit: UnitOfWork, scope: Scope, plan: Plan, *, as_of: datetime, taxonomy: Taxonomy
) -> dict[int, int]:
    """Evaluate ``plan`` for ``scope`` and write the differences; returns each segment's change in
    members. Failures found on the data are added to ``plan.failures``."""
    session = unit.session
    stored = stored_members(session, scope, [segment.id for segment in plan.order])
    inputs = scope_inputs(session, scope)
    frame = rule_frame(
        inputs,
        plan.needs,
        as_of=as_of,
        config=unit.profiles,
        cut_points=latest_cut_points(session),
        taxonomy=taxonomy,
    ).collect()
    for segment in plan.order:
        frame = frame.with_columns(_members(frame, segment, plan, stored))
    columns = {segment_column(segment.name): segment.id for segment in plan.order}
    found = (
        frame.select("subject_id", *columns)
        .unpivot(index="subject_id", variable_name="column", value_name="member")
        .filter(pl.col("member"))
        .select(pl.col("column").replace_strict(columns, return_dtype=pl.Int64).alias("segment_id"), "subject_id")
        if columns
        else MEMBER_SCHEMA.to_frame()
    )
    deltas = write_stays(session, stored, found, now=as_of)
    update_audiences(session, scope, unit.kit.partner_pseudonyms, now=as_of)
    return deltas


def _members(frame: pl.DataFrame, segment: StoredSegment, plan: Plan, stored: pl.DataFrame) -> pl.Series:
    """The segment's column: its rule's answer, or (kept, or failing now) its stored members."""
    name = segment_column(segment.name)
    expression = plan.evaluated(segment.id)
    if expression is not None:
        try:
            return frame.select(expression.alias(name)).to_series()
        except PolarsError as error:
            plan.failures[segment.id] = FailureCode.EVALUATION_FAILED
            logger.warning("segment evaluation failed", extra={"segment": segment.id, **failure_fields(error)})
    kept = stored.filter(pl.col("segment_id") == segment.id)["subject_id"]
    return frame["subject_id"].is_in(kept.implode()).alias(name)


def _selector(
    selection: Selection, segments: list[StoredSegment], only: Collection[int] | None
) -> Callable[[StoredSegment, Rule | None], bool]:
    match selection:
        case Selection.ALL:
            chosen: Callable[[StoredSegment, Rule | None], bool] = lambda _segment, _rule: True  # noqa: E731
        case Selection.TIME_DEPENDENT:
            chosen = swept(segments)
        case Selection.PENDING:
            chosen = lambda segment, _rule: segment.status is SegmentStatus.PENDING  # noqa: E731
    if only is None:
        return chosen
    wanted = set(only)
    return lambda segment, rule: segment.id in wanted and chosen(segment, rule)


def evaluate_population(
    runtime: Runtime,
    *,
    selection: Selection = Selection.ALL,
    only: Collection[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationRun:
    """Evaluate the selected segments (and, with ``only``, only those ids) over every subject.

    The selection grows to every segment that reads a selected one (its answer may change with
    it). ``progress(done, partitions)`` after each committed partition.
    """
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    started = time.monotonic()
    with runtime.sessions() as session:  # a read first: a round with nothing to do takes no write turn
        segments = stored_segments(session)
        chosen = _selector(selection, segments, only)
        first = plan_of(segments, select=chosen)
        grown = first.selected | first.dependents_of(first.selected)
        plan = plan_of(segments, select=lambda segment, _rule: segment.id in grown)
        if not plan.selected:
            return EvaluationRun(0, {}, 0, 0, 0)
        partitions = population_partitions(session)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        as_of = unit.clock()
        mark_started(unit.session, plan.selected, now=as_of)
    count = len(partitions)
    changes = 0
    try:
        for index, partition in enumerate(partitions):
            with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
                serialize_segment_evaluation(unit.session)
                deltas = evaluate_scope(unit, Scope.of_partition(partition), plan, as_of=as_of, taxonomy=taxonomy)
                changes += sum(abs(delta) for delta in deltas.values())
            if progress is not None:
                progress(index + 1, count)
    except BaseException:
        _interrupted(runtime, plan)
        raise
    duration_ms = int((time.monotonic() - started) * 1000)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        recount_members(unit.session, plan.selected)
        failed = {s: code for s, code in plan.failures.items() if s in plan.selected}
        behind = {s.id for s in plan.order if s.status is SegmentStatus.FAILED and s.id not in plan.selected}
        stale = plan.dependents_of(set(failed) | behind)
        outcomes = {segment_id: failed.get(segment_id) for segment_id in plan.selected}
        record_evaluated(unit.session, outcomes, stale=stale, as_of=as_of, duration_ms=duration_ms, now=unit.clock())
    return EvaluationRun(len(plan.selected), failed, count, changes, duration_ms)


def _interrupted(runtime: Runtime, plan: Plan) -> None:
    """A run that stopped half way: its segments are failed and stale, and no longer running."""
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            codes = dict.fromkeys(plan.selected, FailureCode.EVALUATION_INTERRUPTED.value)
            record_failed(unit.session, codes, stale=plan.dependents_of(plan.selected), now=unit.clock())
            clear_started(unit.session, plan.selected)
    except Exception as error:  # noqa: BLE001  (the original failure is what the caller must see)
        logger.error("segment run not marked as interrupted", extra=failure_fields(error))  # noqa: TRY400


def evaluate_subjects(unit: UnitOfWork, subject_ids: Sequence[int], *, taxonomy: Taxonomy) -> dict[int, int]:
    """Re-evaluate ``subject_ids`` in every segment that has had a full evaluation (a pending one
    waits for its own), in the caller's unit of work. Returns each segment's change in members;
    failures are recorded on the segments."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    session, now = unit.session, unit.clock()
    serialize_segment_evaluation(session)
    segments = stored_segments(session)
    plan = plan_of(segments, select=lambda segment, _rule: segment.status is not SegmentStatus.PENDING)
    known = {s.id for s in segments if s.status is SegmentStatus.FAILED}
    totals: dict[int, int] = {}
    for start in range(0, len(ids), MAX_LISTED):
        scope = Scope.listing(ids[start : start + MAX_LISTED])
        for segment_id, delta in evaluate_scope(unit, scope, plan, as_of=now, taxonomy=taxonomy).items():
            totals[segment_id] = totals.get(segment_id, 0) + delta
    add_member_counts(session, totals)
    new = {s: code for s, code in plan.failures.items() if s in plan.selected and s not in known}
    if new:
        record_failed(session, new, stale=plan.dependents_of(new), now=now)
    return totals
