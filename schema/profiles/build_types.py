"""GraphQL types of the batch build's history: what a run was asked, how far it got, how it ended."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.analytics.types import AggregateFigure
from schema.errors import DomainError
from schema.permissions import requires
from server.auth.principal import Role
from server.profiles.build_runs import BuildRun, BuildStatus

BUILD_READERS = requires(Role.ADMIN, Role.ANALYST)
"""Build history holds counts and codes, never a subject: operators and analysts read it (its one
count of people, ``subjects``, released to analysts like any aggregate)."""
ADMIN = requires(Role.ADMIN)

ProfileBuildStatusType = strawberry.enum(
    BuildStatus, name="ProfileBuildStatus", description="RUNNING until the run ends SUCCEEDED or FAILED."
)


@strawberry.type(description="Quantiles of lifetime purchase revenue among buyers, applied by later profile reads.")
class ValueTierCutPoints:
    high: float | None = strawberry.field(extensions=ADMIN, description="At or above it: tier high.")
    low: float | None = strawberry.field(extensions=ADMIN, description="Below it: tier low.")
    buyers: int = strawberry.field(extensions=ADMIN, description="Subjects with at least one purchase.")


@strawberry.type(description="One batch build of the profile state (`audience build` or startProfileBuild).")
class ProfileBuild:
    id: int = strawberry.field(extensions=BUILD_READERS)
    status: ProfileBuildStatusType = strawberry.field(extensions=BUILD_READERS)  # type: ignore[valid-type]
    started_at: datetime = strawberry.field(extensions=BUILD_READERS)
    heartbeat_at: datetime = strawberry.field(
        extensions=BUILD_READERS, description="Written with every partition; a RUNNING run silent for long has died."
    )
    finished_at: datetime | None = strawberry.field(extensions=BUILD_READERS)
    as_of: datetime = strawberry.field(extensions=BUILD_READERS)
    partitions: int = strawberry.field(extensions=BUILD_READERS)
    partitions_done: int = strawberry.field(extensions=BUILD_READERS)
    events_read: int = strawberry.field(extensions=BUILD_READERS)
    subjects: AggregateFigure = strawberry.field(
        extensions=BUILD_READERS,
        description="Profiles written: a count of people, exact for admins, released to analysts like every "
        "aggregate (k floor, noise, one release per build from the key's budget).",
    )
    rows_written: int = strawberry.field(
        extensions=BUILD_READERS, description="State rows inserted: only rows that differed from those stored."
    )
    cut_points: ValueTierCutPoints | None = strawberry.field(
        extensions=ADMIN,
        description="Set when the run succeeded. Admins only: a cut point is a quantile of buyers' revenue, which "
        "is one buyer's revenue (or between two); analysts read revenue through featureQuantiles.",
    )
    error_code: str | None = strawberry.field(extensions=BUILD_READERS)
    error_message: str | None = strawberry.field(extensions=BUILD_READERS)


@strawberry.type
class StartProfileBuildPayload:
    build: ProfileBuild | None = strawberry.field(
        extensions=ADMIN, description="The run just started; poll profileBuild(id) for its progress."
    )
    errors: list[DomainError] = strawberry.field(extensions=ADMIN)


def to_profile_build(run: BuildRun, subjects: AggregateFigure) -> ProfileBuild:
    cuts = run.cut_points
    return ProfileBuild(
        id=run.id,
        status=run.status,
        started_at=run.started_at,
        heartbeat_at=run.heartbeat_at,
        finished_at=run.finished_at,
        as_of=run.as_of,
        partitions=run.partitions,
        partitions_done=run.partitions_done,
        events_read=run.events_read,
        subjects=subjects,
        rows_written=run.rows_written,
        cut_points=None if cuts is None else ValueTierCutPoints(high=cuts.high, low=cuts.low, buyers=cuts.buyers),
        error_code=run.error_code,
        error_message=run.error_message,
    )
