"""A rule's matching population without writing anything: what a marketer's preview counts.

The same rule frame and compiled expression as an evaluation, partition by partition in the
caller's (read-only) session; ``in_segment`` reads the named segments' current members. Yields
the matching subjects' rule-frame rows per partition, so a caller can count them or break them
down by a feature (and suppress small cells) without members ever leaving this function's caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl
from sqlalchemy.orm import Session

from server.profiles.config import ProfileConfig
from server.profiles.tiers import latest_cut_points
from server.runtime import UnitOfWork
from server.segments.compile import compile_rule
from server.segments.definitions import check_rule
from server.segments.evaluate import population_partitions, scope_inputs
from server.segments.memberships import stored_members
from server.segments.rule_frame import needs_of, rule_frame, segment_column
from server.segments.rules import Rule
from server.segments.scope import Scope
from server.segments.store import stored_segments
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["BREAKDOWNS", "Preview", "count_matching", "matching_frames", "preview_rule"]


def matching_frames(
    session: Session, rule: Rule, *, as_of: datetime, config: ProfileConfig, taxonomy: Taxonomy
) -> Iterator[pl.DataFrame]:
    """The rule-frame rows (features and the rule's columns) of the subjects ``rule`` matches, one
    frame per partition. Raises ``RuleNotEvaluable`` for a rule the catalogue cannot evaluate."""
    expression = compile_rule(rule)
    needs = needs_of([rule])
    by_name = {segment.name: segment.id for segment in stored_segments(session)}
    named = {name: by_name[name] for name in needs.segments if name in by_name}
    cut_points = latest_cut_points(session)
    for partition in population_partitions(session):
        scope = Scope.of_partition(partition)
        frame = rule_frame(
            scope_inputs(session, scope),
            needs,
            as_of=as_of,
            config=config,
            cut_points=cut_points,
            taxonomy=taxonomy,
        ).collect()
        members = stored_members(session, scope, list(named.values()))
        frame = frame.with_columns(
            (
                pl.col("subject_id").is_in(members.filter(pl.col("segment_id") == named[name])["subject_id"].implode())
                if name in named
                else pl.lit(value=False)
            ).alias(segment_column(name))
            for name in sorted(needs.segments)
        )
        yield frame.filter(expression)


def count_matching(session: Session, rule: Rule, *, as_of: datetime, config: ProfileConfig, taxonomy: Taxonomy) -> int:
    """How many subjects ``rule`` matches now (a segment's size before it is saved)."""
    return sum(frame.height for frame in matching_frames(session, rule, as_of=as_of, config=config, taxonomy=taxonomy))


BREAKDOWNS: Final = ("lifecycle", "value_tier", "age_band", "region")


@dataclass(frozen=True, slots=True)
class Preview:
    size: int
    breakdowns: dict[str, dict[str, int]]
    """Per feature, the matching people by value (those without a value are in no cell)."""
    as_of: datetime


def preview_rule(unit: UnitOfWork, rule: Rule, *, taxonomy: Taxonomy) -> Preview:
    """The marketer's preview: the rule is validated as saving would, then counted and broken down.
    Counts only; the caller applies the anonymity floor (``privacy.anonymity``)."""
    session, as_of = unit.session, unit.clock()
    check_rule(session, rule, taxonomy=taxonomy)
    size = 0
    cells: dict[str, Counter[str]] = {name: Counter() for name in BREAKDOWNS}
    for frame in matching_frames(session, rule, as_of=as_of, config=unit.profiles, taxonomy=taxonomy):
        size += frame.height
        for name in BREAKDOWNS:
            counted = frame.group_by(name).len().drop_nulls(name)
            cells[name].update(dict(zip(counted[name].to_list(), counted["len"].to_list(), strict=True)))
    return Preview(size, {name: dict(counted) for name, counted in cells.items()}, as_of)
