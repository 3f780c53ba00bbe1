"""Segments as marketers see them, each member count released (``server.analytics.marketing``)."""

from __future__ import annotations

from collections.abc import Sequence

from schema.context import Context
from schema.segments.types import Count, Segment, to_count, to_segment
from server.analytics.marketing import member_counts
from server.analytics.release import Figure
from server.analytics.service import asker_of
from server.runtime import UnitOfWork
from server.segments.definitions import SegmentView

NOT_ASKED = Count(value=None, suppressed=None, noise_scale=None)


async def shown_segments(context: Context, views: Sequence[SegmentView], *, counted: bool) -> list[Segment]:
    """``counted``: whether the query selects ``memberCount``; without it nothing is released or
    spent, and the field stays unset (it is never read)."""
    if not views:
        return []
    if not counted:
        return [to_segment(view, NOT_ASKED) for view in views]
    asker, settings = asker_of(context.caller), context.runtime.settings
    ids = [view.id for view in views]

    def work(unit: UnitOfWork) -> dict[int, tuple[Figure, float | None]]:
        return member_counts(unit.session, asker, ids, settings=settings, noise=unit.kit.noise, as_of=unit.clock())

    counts = await context.run(work)
    return [to_segment(view, to_count(*counts[view.id])) for view in views]
