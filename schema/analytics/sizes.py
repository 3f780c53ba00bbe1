"""Segment sizes and their daily trend for analysts, and what the caller's budget has left."""

from __future__ import annotations

import enum
from datetime import date

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from schema.analytics.types import ANALYTICS_READERS, AggregatePayload, payload_of
from schema.context import Context
from schema.permissions import requires
from server.analytics import sizes
from server.analytics.budget import BudgetView, budget_of, cost_of
from server.analytics.release import Answer
from server.analytics.service import answer
from server.auth.principal import Role
from server.runtime import UnitOfWork
from server.storage.tables import SegmentRow


@strawberry.type(description="A segment analysts may ask about: its name and description, never its members.")
class AnalyticsSegment:
    name: str = strawberry.field(extensions=ANALYTICS_READERS)
    description: str | None = strawberry.field(extensions=ANALYTICS_READERS)


BUDGET_READERS = requires(Role.ANALYST, Role.MARKETER, Role.ADMIN)


@strawberry.type(description="The caller's budget this period, and what a new answer costs; repeats cost nothing.")
class AnalyticsBudget:
    period_start: date = strawberry.field(extensions=BUDGET_READERS)
    period_end: date = strawberry.field(extensions=BUDGET_READERS, description="The next period's first day.")
    k: int = strawberry.field(extensions=BUDGET_READERS, description="The anonymity threshold.")
    differential_privacy: bool = strawberry.field(extensions=BUDGET_READERS)
    noise_scale: float | None = strawberry.field(
        extensions=BUDGET_READERS, description="Without differential privacy: the sticky noise's scale."
    )
    epsilon_per_answer: float | None = strawberry.field(
        extensions=BUDGET_READERS, description="With differential privacy: what each new answer costs."
    )
    epsilon_spent: float | None = strawberry.field(extensions=BUDGET_READERS)
    epsilon_left: float | None = strawberry.field(extensions=BUDGET_READERS)
    releases_spent: int = strawberry.field(extensions=BUDGET_READERS)
    releases_left: int = strawberry.field(extensions=BUDGET_READERS)


@strawberry.enum(description="The shape of an aggregate, which sets how many of its values one person moves.")
class AggregateKind(enum.Enum):
    SIZE = "size"
    TREND = "trend"
    OVERLAP = "overlap"
    DISTRIBUTION = "distribution"
    REACH = "reach"
    MIX = "mix"


@strawberry.type(description="What a new answer would cost and carry; asking this costs nothing.")
class AnalyticsCost:
    releases: int = strawberry.field(extensions=BUDGET_READERS)
    epsilon: float | None = strawberry.field(
        extensions=BUDGET_READERS, description="With differential privacy on: the ε a new answer spends."
    )
    noise_scale: float = strawberry.field(
        extensions=BUDGET_READERS, description="Scale of the noise each of its values would carry."
    )
    affordable: bool = strawberry.field(
        extensions=BUDGET_READERS, description="Whether the key has that left this period (a repeat costs nothing)."
    )
    shown_from: int = strawberry.field(
        extensions=BUDGET_READERS,
        description="The smallest count it could show: k plus the threshold margin's noise scales; below, "
        "counts are suppressed 'below_k'.",
    )


def sensitivity_of(kind: AggregateKind, days: int, topics: int) -> int:
    """Mirrors the truths: a count 1; a breakdown with its total 2; a trend its days and today's
    total; a reach its topics and its total."""
    if kind is AggregateKind.SIZE:
        return 1
    if kind is AggregateKind.TREND:
        return max(1, min(days, sizes.MAX_TREND_DAYS)) + 1
    if kind is AggregateKind.REACH:
        return max(1, topics) + 1
    return 2


def _budget(view: BudgetView) -> AnalyticsBudget:
    return AnalyticsBudget(
        period_start=view.period_start,
        period_end=view.period_end,
        k=view.k,
        differential_privacy=view.differential_privacy,
        noise_scale=view.noise_scale,
        epsilon_per_answer=view.epsilon_per_answer,
        epsilon_spent=view.epsilon_spent,
        epsilon_left=view.epsilon_left,
        releases_spent=view.releases_spent,
        releases_left=view.releases_left,
    )


@strawberry.type
class SizeQueries:
    @strawberry.field(extensions=ANALYTICS_READERS, description="Segments by name, to ask about.")
    async def analytics_segments(self, info: Info[Context, None]) -> list[AnalyticsSegment]:
        rows = await info.context.read(
            lambda session: session.execute(select(SegmentRow.name, SegmentRow.description).order_by(SegmentRow.name))
        )
        return [AnalyticsSegment(name=name, description=description) for name, description in rows]

    @strawberry.field(
        extensions=BUDGET_READERS,
        description="The caller's budget this period (marketers spend from one too).",
    )
    async def analytics_budget(self, info: Info[Context, None]) -> AnalyticsBudget:
        context = info.context
        key_id, settings, now = context.caller.key_id, context.runtime.settings, context.runtime.clock()
        return _budget(await context.read(lambda session: budget_of(session, key_id, settings, now=now)))

    @strawberry.field(
        extensions=BUDGET_READERS,
        description="What a new answer of this kind would cost and its noise, before it is asked (nothing spent).",
    )
    async def analytics_cost(
        self, info: Info[Context, None], kind: AggregateKind, days: int = 30, topics: int = 1
    ) -> AnalyticsCost:
        context = info.context
        key_id, settings, now = context.caller.key_id, context.runtime.settings, context.runtime.clock()
        sensitivity = sensitivity_of(kind, days, topics)
        cost = await context.read(lambda session: cost_of(session, key_id, sensitivity, settings, now=now))
        return AnalyticsCost(
            releases=cost.releases,
            epsilon=cost.epsilon,
            noise_scale=cost.noise_scale,
            affordable=cost.affordable,
            shown_from=cost.shown_from,
        )

    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="A segment's countable members now (consenting to profiling, unrestricted); exact: admins only.",
    )
    async def segment_size(self, info: Info[Context, None], segment: str, exact: bool = False) -> AggregatePayload:
        context = info.context
        settings = context.runtime.settings

        def work(unit: UnitOfWork) -> Answer:
            row = sizes.known_segment(unit.session, segment)
            return answer(
                unit,
                context.caller,
                sizes.size_question(row.id),
                lambda session: sizes.size_truth(session, row),
                settings=settings,
                exact=exact,
            )

        return await payload_of(lambda: context.analytics(work))

    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="A segment's size at the end of each of the last `days` days (today included), "
        "one cell per day keyed by ISO date; people who may not be counted now are left out of every day.",
    )
    async def segment_size_trend(
        self, info: Info[Context, None], segment: str, days: int = 30, exact: bool = False
    ) -> AggregatePayload:
        context = info.context
        settings = context.runtime.settings

        def work(unit: UnitOfWork) -> Answer:
            row = sizes.known_segment(unit.session, segment)
            last_day = unit.clock().date()
            return answer(
                unit,
                context.caller,
                sizes.trend_question(row),
                lambda session: sizes.trend_truth(session, row, days, last_day),
                settings=settings,
                exact=exact,
            )

        return await payload_of(lambda: context.analytics(work))
