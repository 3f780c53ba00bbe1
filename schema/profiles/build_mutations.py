from __future__ import annotations

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from schema.context import Context
from schema.errors import DomainError
from schema.profiles.build_counts import shown_builds
from schema.profiles.build_types import ADMIN, StartProfileBuildPayload
from server.profiles import build_runs
from server.profiles.build import start_build
from server.profiles.build_runs import BuildError, BuildErrorCode
from server.profiles.partitions import EVENTS_PER_PARTITION, MAX_PARTITIONS


@strawberry.type
class ProfileBuildMutations:
    @strawberry.mutation(
        extensions=ADMIN,
        description="Start a batch build of the profile state on the server; one runs at a time (BUILD_RUNNING). "
        f"partitions: 1-{MAX_PARTITIONS:,}, by default one per {EVENTS_PER_PARTITION:,} stored events.",
    )
    async def start_profile_build(
        self, info: Info[Context, None], partitions: int | None = None
    ) -> StartProfileBuildPayload:
        runtime, actor = info.context.runtime, info.context.caller.actor
        try:
            run_id = await run_in_threadpool(lambda: start_build(runtime, partitions=partitions, actor=actor))
        except BuildError as error:
            field = "partitions" if error.code is BuildErrorCode.INVALID_PARTITIONS else None
            return StartProfileBuildPayload(
                build=None, errors=[DomainError(field=field, code=error.code.value, message=error.message)]
            )
        run = await info.context.read(lambda session: build_runs.build_run(session, run_id))
        build = None if run is None else (await shown_builds(info, [run], field="build"))[0]
        return StartProfileBuildPayload(build=build, errors=[])
