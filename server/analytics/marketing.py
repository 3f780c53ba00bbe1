"""Counts marketers see (segment member counts, rule previews) released like every aggregate.

A marketer can phrase any rule, so a marketer is the differencing attacker the issue names first:
preview a rule, then the same rule minus one person (a purchase on one day, a rare interest, a
random bucket), or save both as segments and read their member counts. Exact counts, even above
k, would give that person away by subtraction; released through ``server.analytics.release``
they carry sticky noise and cost the marketer's key from its budget.

The question of a preview is its canonical rule text (``server.segments.dsl.render``), so the same
rule sent as text or as structured input, reformatted or with its parts in the same order, is
one question and gets one answer; a member count's question is the segment's size, the one an
analyst asks too, so both roles see the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from privacy.noise import NoiseSource
from server.analytics.histograms import cells_of_counts
from server.analytics.listed import released_each
from server.analytics.population import segment_sizes
from server.analytics.questions import Question
from server.analytics.release import TOTAL, Answer, Asker, Figure, Truth, may_name, release
from server.analytics.sizes import size_question
from server.segments.dsl import render
from server.segments.preview import Preview
from server.segments.rules import Rule
from server.settings import Settings

__all__ = ["ReleasedPreview", "member_counts", "released_preview"]


@dataclass(frozen=True, slots=True)
class ReleasedPreview:
    size: Answer
    breakdowns: dict[str, Answer]


def released_preview(
    session: Session,
    asker: Asker,
    rule: Rule,
    preview: Preview,
    *,
    settings: Settings,
    noise: NoiseSource,
) -> ReleasedPreview:
    """The size as one release and each breakdown as another (its total is the size, for secondary
    suppression, and is not shown again), in cells named before the data is looked at (a cell's
    name is shown even when its count is not: ``histograms.cells_of_counts``). Raises
    ``BudgetExhausted``."""
    text = render(rule)
    size_of = Question.of("preview_size", rule=text)
    named = may_name(size_of, settings=settings, noise=noise, exact=False)
    size = release(
        session,
        asker,
        size_of,
        Truth(preview.size),
        settings=settings,
        noise=noise,
        as_of=preview.as_of,
    )
    breakdowns = {
        feature: release(
            session,
            asker,
            Question.of("preview_breakdown", rule=text, feature=feature),
            Truth(
                preview.size,
                cells_of_counts(feature, cells, preview.size, named=named),
                sensitivity=2,
                same_as={TOTAL: (size_of, TOTAL)},  # the size shown above: one draw, one decision
            ),
            settings=settings,
            noise=noise,
            as_of=preview.as_of,
        )
        for feature, cells in preview.breakdowns.items()
    }
    return ReleasedPreview(size, breakdowns)


def member_counts(
    session: Session,
    asker: Asker,
    segment_ids: Sequence[int],
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
) -> dict[int, tuple[Figure, float | None]]:
    """Each segment's countable members now, released (``listed.released_each``: once the budget
    is spent the rest show no value rather than failing the whole listing)."""
    sizes = segment_sizes(session, segment_ids)
    counts = {segment_id: (size_question(segment_id), sizes[segment_id]) for segment_id in segment_ids}
    return released_each(session, asker, counts, settings=settings, noise=noise, as_of=as_of)
