from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from privacy.purposes import Purpose
from schema.access.types import PurposeType
from schema.context import Context
from schema.errors import ErrorCode
from schema.partners.convert import (
    refused_changes,
    refused_members,
    to_change_connection,
    to_member_connection,
    to_visitor,
)
from schema.partners.types import (
    PARTNER,
    GrantedSegment,
    SegmentChangeConnection,
    SegmentMemberConnection,
    Visitor,
    VisitorIdentifierInput,
)
from server.partners import feed, grants, lookup, members
from server.partners.grants import PartnerReadError, partner_scope
from server.partners.interests import interest_index
from server.taxonomy.taxonomy import taxonomy_for


@strawberry.type
class PartnerQueries:
    @strawberry.field(
        extensions=PARTNER,
        description="The segments granted to this partner (in force, for purposes it declares).",
    )
    async def granted_segments(self, info: Info[Context, None]) -> list[GrantedSegment]:
        scope = partner_scope(info.context.caller)
        found = await info.context.read(lambda session: grants.active_grants(session, scope))
        return [GrantedSegment(name=g.segment, purpose=g.purpose) for g in found]

    @strawberry.field(
        extensions=PARTNER,
        description="Which of its granted segments a visitor it identified itself is in, and its top interests "
        f"(0..{lookup.MAX_TOP_INTERESTS}). Anyone it may not see gets the answer of an unknown visitor.",
    )
    async def visitor(
        self,
        info: Info[Context, None],
        identifier: VisitorIdentifierInput,
        top_interests: int = lookup.DEFAULT_TOP_INTERESTS,
    ) -> Visitor:
        if not 0 <= top_interests <= lookup.MAX_TOP_INTERESTS:
            raise GraphQLError(
                f"topInterests must be between 0 and {lookup.MAX_TOP_INTERESTS}",
                extensions={"code": ErrorCode.BAD_USER_INPUT},
            )
        runtime = info.context.runtime
        scope = partner_scope(info.context.caller)
        index = interest_index(runtime.profiles, taxonomy_for(runtime.settings.taxonomy_extra))
        kind, value = identifier.to_domain()
        answer = await info.context.read(
            lambda session: lookup.visitor(
                session,
                runtime.kit,
                partner=scope,
                kind=kind,
                value=value,
                top_k=top_interests,
                index=index,
                now=runtime.clock(),
            )
        )
        return to_visitor(answer)

    @strawberry.field(
        extensions=PARTNER,
        description=f"A granted segment's consenting members as this partner's pseudonyms (first <= "
        f"{members.MAX_PAGE}); stable across pages while the segment changes. purpose: only when the segment is "
        "granted for several.",
    )
    async def segment_members(
        self,
        info: Info[Context, None],
        segment: str,
        purpose: PurposeType | None = None,  # type: ignore[valid-type]
        first: int = members.DEFAULT_PAGE,
        after: str | None = None,
    ) -> SegmentMemberConnection:
        kit = info.context.runtime.kit
        scope = partner_scope(info.context.caller)
        chosen = None if purpose is None else Purpose(purpose)
        try:
            page = await info.context.read(
                lambda session: members.segment_members(
                    session, kit, partner=scope, segment=segment, purpose=chosen, first=first, after=after
                )
            )
        except PartnerReadError as error:
            return refused_members(error)
        return to_member_connection(page, after=after)

    @strawberry.field(
        extensions=PARTNER,
        description=f"The change feed of this partner's granted segments after a cursor (first <= {feed.MAX_PAGE}); "
        "resume from the last cursor seen.",
    )
    async def segment_changes(
        self, info: Info[Context, None], after: str | None = None, first: int = feed.DEFAULT_PAGE
    ) -> SegmentChangeConnection:
        kit = info.context.runtime.kit
        scope = partner_scope(info.context.caller)
        try:
            page = await info.context.read(
                lambda session: feed.segment_changes(session, kit, partner=scope, after=after, first=first)
            )
        except PartnerReadError as error:
            return refused_changes(error)
        return to_change_connection(page, after=after)
