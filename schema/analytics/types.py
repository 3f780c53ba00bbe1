"""Aggregates as analysts see them: every value says how it was computed, and none is below k."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry

from schema.errors import DomainError
from schema.permissions import requires
from server.analytics.refusals import QuestionRefused
from server.analytics.release import Answer, BudgetExhausted, ExactNotPermitted, Figure
from server.auth.principal import Role

ANALYTICS_READERS = requires(Role.ANALYST, Role.ADMIN)

__all__ = ["ANALYTICS_READERS", "BUDGET_SPENT_ERROR", "Aggregate", "AggregatePayload", "payload_of", "to_aggregate"]


@strawberry.enum(description="How an aggregate was computed.")
class AggregateMethod(enum.Enum):
    EXACT = "exact"
    ESTIMATE = "estimate"
    NOISY = "noisy"


@strawberry.type(description="One released count: null with a reason when suppressed, bounds when estimated.")
class AggregateFigure:
    value: int | None = strawberry.field(extensions=ANALYTICS_READERS)
    suppressed: str | None = strawberry.field(
        extensions=ANALYTICS_READERS,
        description="'below_k': fewer than k people or, in a noisy answer, hidden by the noisy threshold "
        "(shownFrom) or so that another hidden cell cannot be recovered from the total; 'complement' (exact "
        "answers only): hidden so that another hidden cell cannot be recovered from the total.",
    )
    low: int | None = strawberry.field(
        extensions=ANALYTICS_READERS, description="Estimates only: lower bound (about 95 %), noise included."
    )
    high: int | None = strawberry.field(extensions=ANALYTICS_READERS, description="Estimates only: upper bound.")


@strawberry.type(description="A cell of a breakdown, named by its key (a bin, a band, a Venn region...).")
class AggregateCell:
    key: str = strawberry.field(extensions=ANALYTICS_READERS)
    count: AggregateFigure = strawberry.field(extensions=ANALYTICS_READERS)


@strawberry.type(description="A released aggregate: a total, its cells, how they were computed and what it cost.")
class Aggregate:
    method: AggregateMethod = strawberry.field(extensions=ANALYTICS_READERS)
    noise_scale: float | None = strawberry.field(
        extensions=ANALYTICS_READERS, description="Scale of the discrete Laplace noise on each shown value."
    )
    shown_from: int = strawberry.field(
        extensions=ANALYTICS_READERS,
        description="The smallest value shown: k for exact answers; for noisy ones k plus a margin of noise "
        "scales (the noisy threshold), so whether a count near k is shown says nothing certain about one person.",
    )
    total: AggregateFigure = strawberry.field(extensions=ANALYTICS_READERS)
    cells: list[AggregateCell] = strawberry.field(extensions=ANALYTICS_READERS)
    as_of: datetime = strawberry.field(extensions=ANALYTICS_READERS)
    epsilon_spent: float | None = strawberry.field(
        extensions=ANALYTICS_READERS, description="Differential privacy on: what this answer cost (0 for a repeat)."
    )
    epsilon_left: float | None = strawberry.field(
        extensions=ANALYTICS_READERS, description="Differential privacy on: what the key has left this period."
    )
    releases_left: int = strawberry.field(
        extensions=ANALYTICS_READERS, description="New answers the key may still be given this period."
    )


@strawberry.type
class AggregatePayload:
    aggregate: Aggregate | None = strawberry.field(extensions=ANALYTICS_READERS)
    errors: list[DomainError] = strawberry.field(extensions=ANALYTICS_READERS)


def to_figure(figure: Figure) -> AggregateFigure:
    return AggregateFigure(value=figure.value, suppressed=figure.reason, low=figure.low, high=figure.high)


def to_aggregate(answer: Answer) -> Aggregate:
    return Aggregate(
        method=AggregateMethod(answer.method.value),
        noise_scale=answer.noise_scale,
        shown_from=answer.shown_from,
        total=to_figure(answer.total),
        cells=[AggregateCell(key=key, count=to_figure(figure)) for key, figure in answer.cells.items()],
        as_of=answer.as_of,
        epsilon_spent=_spent(answer),
        epsilon_left=answer.epsilon_left,
        releases_left=answer.releases_left,
    )


def _spent(answer: Answer) -> float | None:
    """With differential privacy on, a repeat spent 0 (``release`` says None for it)."""
    if answer.epsilon_left is None:
        return None
    return answer.epsilon_spent or 0.0


BUDGET_SPENT_ERROR = DomainError(field=None, code=BudgetExhausted.code, message=BudgetExhausted.message)
"""What every released answer says once the caller's key has spent its budget (previews too)."""


async def payload_of(compute: Callable[[], Awaitable[Answer]]) -> AggregatePayload:
    """Runs ``compute``; budget, permission and input refusals become the payload's ``errors``."""
    try:
        answer = await compute()
    except BudgetExhausted:
        return AggregatePayload(aggregate=None, errors=[BUDGET_SPENT_ERROR])
    except ExactNotPermitted:
        error = DomainError(field="exact", code=ExactNotPermitted.code, message="exact counts are for admins")
        return AggregatePayload(aggregate=None, errors=[error])
    except QuestionRefused as refused:
        return AggregatePayload(
            aggregate=None, errors=[DomainError(field=refused.field, code=refused.code, message=refused.message)]
        )
    return AggregatePayload(aggregate=to_aggregate(answer), errors=[])
