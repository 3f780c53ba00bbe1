"""The feature frame of the people an analyst's distribution counts: countable now, optionally
within one saved segment.

Countable: a profile, ``profiling`` consent now and no restriction (``evaluated_subjects``, the
same population segments evaluate), so a withdrawal leaves every distribution at the very next
question (invariant 3). Within a segment: those of them with an open stay in it
(``countable_members``), read in the same transaction.

The frame is built as a segment evaluation builds its rule frame (the same feature formulas, as of
the same moment), partition by partition, keeping only the columns the question reads; the rows
never leave this module's caller, which reduces them to counts before ``release``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from server.analytics.population import countable_members
from server.analytics.sizes import known_segment
from server.profiles.config import ProfileConfig
from server.profiles.tiers import latest_cut_points
from server.segments.evaluate import population_partitions, scope_inputs
from server.segments.rule_frame import Needs, rule_frame
from server.segments.scope import Scope
from server.storage.arrow_reads import SessionReader
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["Population", "countable_features", "population_of"]


@dataclass(frozen=True, slots=True)
class Population:
    """Whom a question counts: every countable person, or those in one segment (its id and version)."""

    segment_id: int | None = None
    segment_version: int | None = None

    def canonical(self) -> tuple[int, int] | None:
        """The segment as a question names it: a renamed segment is the same question, an edited rule a new one."""
        if self.segment_id is None or self.segment_version is None:
            return None
        return (self.segment_id, self.segment_version)


def population_of(session: Session, segment: str | None) -> Population:
    """Raises ``QuestionRefused`` (``UNKNOWN_SEGMENT``) for a name no segment has; the message never repeats it."""
    if segment is None:
        return Population()
    row = known_segment(session, segment)
    return Population(row.id, row.version)


def countable_features(
    session: Session,
    population: Population,
    *,
    columns: Sequence[str],
    needs: Needs,
    as_of: datetime,
    config: ProfileConfig,
    taxonomy: Taxonomy,
) -> pl.DataFrame:
    """``columns`` of the rule frame (features, and the interest scores ``needs`` names) of every
    person ``population`` counts, one row each."""
    members: pl.Series | None = None
    if population.segment_id is not None:
        members = countable_members(SessionReader(session), [population.segment_id])["subject_id"]
    cut_points = latest_cut_points(session)
    frames = [
        rule_frame(
            scope_inputs(session, Scope.of_partition(partition), within=members),
            needs,
            as_of=as_of,
            config=config,
            cut_points=cut_points,
            taxonomy=taxonomy,
        )
        .select(columns)
        .collect()
        for partition in population_partitions(session)
    ]
    return pl.concat(frames)
