"""Builds as a caller sees them: the profiles each wrote, released to analysts
(``server.analytics.operational``), exact for admins, and not released at all when not asked for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strawberry.types import Info

from schema.analytics.types import AggregateFigure, to_figure
from schema.context import Context
from schema.profiles.build_types import ProfileBuild, to_profile_build
from schema.selections import selects
from server.analytics.operational import build_profiles
from server.analytics.release import Figure
from server.analytics.service import asker_of
from server.profiles.build_runs import BuildRun
from server.runtime import UnitOfWork

NOT_ASKED = AggregateFigure(value=None, suppressed=None, low=None, high=None)


async def shown_builds(
    info: Info[Context, Any], runs: Sequence[BuildRun], *, field: str | None = None
) -> list[ProfileBuild]:
    """``field``: where the builds sit below the field being resolved (a payload's ``build``)."""
    path = ("subjects",) if field is None else (field, "subjects")
    if not runs or not selects(info, *path):
        return [to_profile_build(run, NOT_ASKED) for run in runs]
    context = info.context
    asker, settings = asker_of(context.caller), context.runtime.settings
    profiles = {run.id: run.subjects for run in runs}

    def work(unit: UnitOfWork) -> dict[int, Figure]:
        return build_profiles(
            unit.session, asker, profiles, settings=settings, noise=unit.kit.noise, as_of=unit.clock()
        )

    figures = await context.run(work)
    return [to_profile_build(run, to_figure(figures[run.id])) for run in runs]
