from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.context import Context
from schema.profiles.build_counts import shown_builds
from schema.profiles.build_types import BUILD_READERS, ProfileBuild
from server.profiles import build_runs

MAX_BUILDS = 100


@strawberry.type
class ProfileBuildQueries:
    @strawberry.field(extensions=BUILD_READERS, description="One batch build of the profile state, by id.")
    async def profile_build(self, info: Info[Context, None], id: int) -> ProfileBuild | None:
        found = await info.context.read(lambda session: build_runs.build_run(session, id))
        return None if found is None else (await shown_builds(info, [found]))[0]

    @strawberry.field(extensions=BUILD_READERS, description="The latest batch builds, newest first (at most 100).")
    async def profile_builds(self, info: Info[Context, None], first: int = 20) -> list[ProfileBuild]:
        found = await info.context.read(lambda session: build_runs.build_runs(session, min(first, MAX_BUILDS)))
        return await shown_builds(info, found)
