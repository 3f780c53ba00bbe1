"""What a key has spent this period and what a new answer would cost: asked before a question
is, so an analyst can plan without spending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from privacy.dp import scale_for
from server.analytics.ledger import period_of, spent
from server.analytics.release import shown_from
from server.settings import Settings

__all__ = ["BudgetView", "Cost", "budget_of", "cost_of"]


@dataclass(frozen=True, slots=True)
class BudgetView:
    period_start: date
    period_end: date
    """The first day of the next period."""
    k: int
    differential_privacy: bool
    noise_scale: float | None
    """Without differential privacy: the sticky noise's scale."""
    epsilon_per_answer: float | None
    """With it: what each new answer costs (its noise scale is the answer's sensitivity / this)."""
    epsilon_spent: float | None
    epsilon_left: float | None
    releases_spent: int
    releases_left: int


def budget_of(session: Session, key_id: str, settings: Settings, *, now: datetime) -> BudgetView:
    start = period_of(now, settings.analytics_period_days)
    used = spent(session, key_id, start)
    dp_on = settings.dp_epsilon_per_period > 0
    return BudgetView(
        period_start=start,
        period_end=start + timedelta(days=settings.analytics_period_days),
        k=settings.anonymity_threshold,
        differential_privacy=dp_on,
        noise_scale=None if dp_on else settings.analytics_noise_scale,
        epsilon_per_answer=settings.dp_epsilon_per_answer if dp_on else None,
        epsilon_spent=used.epsilon if dp_on else None,
        epsilon_left=max(0.0, settings.dp_epsilon_per_period - used.epsilon) if dp_on else None,
        releases_spent=used.releases,
        releases_left=max(0, settings.analytics_releases_per_period - used.releases),
    )


@dataclass(frozen=True, slots=True)
class Cost:
    """What a new answer of a given sensitivity would cost and carry, before it is asked."""

    releases: int
    epsilon: float | None
    noise_scale: float
    affordable: bool
    """Whether the key has what it costs left this period (a repeat would cost nothing)."""
    shown_from: int
    """The smallest count it could show (the noisy threshold at its noise scale)."""


def cost_of(session: Session, key_id: str, sensitivity: int, settings: Settings, *, now: datetime) -> Cost:
    """A new answer costs one release and, with differential privacy on, ``dp_epsilon_per_answer``
    whatever its shape: its noise scale grows with its sensitivity instead (``release``)."""
    view = budget_of(session, key_id, settings, now=now)
    if not view.differential_privacy:
        scale = settings.analytics_noise_scale
        return Cost(1, None, scale, view.releases_left >= 1, shown_from(settings, scale))
    epsilon = settings.dp_epsilon_per_answer
    left = view.epsilon_left or 0.0
    scale = scale_for(epsilon, sensitivity)
    affordable = view.releases_left >= 1 and left + 1e-9 >= epsilon
    return Cost(1, epsilon, scale, affordable, shown_from(settings, scale))
