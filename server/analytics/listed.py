"""Counts shown one per row of a listing: segments' member counts, the profiles each build wrote,
each source's bot-like subjects. Each is a question of its own, released on its own (floor, noise,
budget), so a row asked again is the same number and costs nothing; once the key's budget is spent
the remaining rows show no value, with ``BUDGET_SPENT`` as the reason, rather than failing the
whole listing (the reason is the key's budget, never the count)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from privacy.noise import NoiseSource
from server.analytics.questions import Question
from server.analytics.release import Answer, Asker, BudgetExhausted, Figure, Truth, release
from server.settings import Settings

__all__ = ["BUDGET_SPENT", "answered_each", "released_each"]

BUDGET_SPENT = "budget_exhausted"

Row = TypeVar("Row", bound=Hashable)


def answered_each(
    session: Session,
    asker: Asker,
    truths: Mapping[Row, tuple[Question, Truth]],
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
) -> dict[Row, Answer | None]:
    """Each row's truth released as the answer to its question; None for the rows asked once the
    key's budget is spent."""
    answers: dict[Row, Answer | None] = {}
    for row, (question, truth) in truths.items():
        try:
            answers[row] = release(session, asker, question, truth, settings=settings, noise=noise, as_of=as_of)
        except BudgetExhausted:
            answers[row] = None
    return answers


def released_each(
    session: Session,
    asker: Asker,
    counts: Mapping[Row, tuple[Question, int]],
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
) -> dict[Row, tuple[Figure, float | None]]:
    """Each row's single count released, with the noise scale it carries."""
    truths = {row: (question, Truth(value)) for row, (question, value) in counts.items()}
    answers = answered_each(session, asker, truths, settings=settings, noise=noise, as_of=as_of)
    return {
        row: (Figure(None, BUDGET_SPENT), None) if answer is None else (answer.total, answer.noise_scale)
        for row, answer in answers.items()
    }
