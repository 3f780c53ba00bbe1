"""``segmentOverlap``: the Venn cells of two to four segments, for analysts and admins."""

from __future__ import annotations

import enum

import strawberry
from strawberry.types import Info

from schema.analytics.types import ANALYTICS_READERS, AggregatePayload, payload_of
from schema.context import Context
from server.analytics import overlaps


@strawberry.enum(description="How an overlap's true values are found before they are released.")
class OverlapMethod(enum.Enum):
    EXACT = "exact"
    ESTIMATE = "estimate"


@strawberry.type
class OverlapQueries:
    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="Every cell of the Venn diagram of 2 to 4 segments (by name), and the union as the total. "
        "Cells are keyed from the names sorted: 'a only' is in a and in none of the others, 'a&b' in a and b "
        "and none of the others. ESTIMATE combines the stored theta sketches (bounds given); EXACT counts the "
        "members. exact=true releases without noise and is for admins.",
    )
    async def segment_overlap(
        self,
        info: Info[Context, None],
        segments: list[str],
        method: OverlapMethod = OverlapMethod.ESTIMATE,
        exact: bool = False,
    ) -> AggregatePayload:
        ctx = info.context
        settings = ctx.runtime.settings
        chosen = overlaps.OverlapMethod(method.value)

        return await payload_of(
            lambda: ctx.run(
                lambda unit: overlaps.answer_overlap(unit, ctx.caller, segments, chosen, settings=settings, exact=exact)
            )
        )
