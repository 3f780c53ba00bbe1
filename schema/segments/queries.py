"""Reading segments, templates and grants (marketers and admins); counts below k are suppressed."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.segments.counts import shown_segments
from schema.segments.types import SEGMENT_READERS, Segment, SegmentGrant, SegmentTemplate, to_grant
from schema.selections import selects
from server.segments import definitions, grants
from server.segments.dsl import render
from server.segments.templates import templates
from server.taxonomy.taxonomy import taxonomy_for


@strawberry.type
class SegmentQueries:
    @strawberry.field(extensions=SEGMENT_READERS, description="Every segment with its health, by name.")
    async def segments(self, info: Info[Context, None]) -> list[Segment]:
        views = await info.context.read(
            lambda session: definitions.list_segments(session, now=info.context.runtime.clock())
        )
        return await shown_segments(info.context, views, counted=selects(info, "memberCount"))

    @strawberry.field(extensions=SEGMENT_READERS, description="One segment by name; null when there is none.")
    async def segment(self, info: Info[Context, None], name: str) -> Segment | None:
        view = await info.context.read(
            lambda session: definitions.find_segment(session, name, now=info.context.runtime.clock())
        )
        if view is None:
            return None
        return (await shown_segments(info.context, [view], counted=selects(info, "memberCount")))[0]

    @strawberry.field(extensions=SEGMENT_READERS, description="Ready-made segments, by family.")
    def segment_templates(self, info: Info[Context, None]) -> list[SegmentTemplate]:
        taxonomy = taxonomy_for(info.context.runtime.settings.taxonomy_extra)
        return [
            SegmentTemplate(name=t.name, family=t.family, description=t.description, rule_text=render(t.rule))
            for t in templates(taxonomy)
        ]

    @strawberry.field(extensions=SEGMENT_READERS, description="Grants to partners, of one segment or of all.")
    async def segment_grants(
        self, info: Info[Context, None], segment: str | None = None, active_only: bool = False
    ) -> list[SegmentGrant]:
        views = await info.context.read(
            lambda session: grants.list_grants(session, segment=segment, active_only=active_only)
        )
        return [to_grant(view) for view in views]
