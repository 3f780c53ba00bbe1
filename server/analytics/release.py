"""The one way a count leaves for an analyst, a BI tool or a marketer: ``release``.

In order, for every answer (a total and the cells of a breakdown, computed exactly or estimated
from sketches by the caller):

1. the anonymity floor on the true values (``privacy.anonymity``): a value below k is suppressed,
   never rounded. For exact answers secondary suppression on true values follows, so a hidden cell
   cannot be recovered as the total minus the shown ones; for noisy answers it is decided in step
   4, on the noisy values;
2. the differencing defence: every shown value carries noise, so two answers whose populations
   differ by a few people do not tell who. Without differential privacy the noise is sticky
   (``privacy.noise``, seeded per value by the question, the value's name in the answer and its
   true value: the same value asked again, alone or inside a larger answer, gets the same number,
   so repeating and averaging gains nothing); with it, OpenDP's discrete Laplace at the scale that makes the
   answer cost ``dp_epsilon_per_answer``, and a repeat is answered from the ledger;
3. the budget (``server.analytics.ledger``): each *new* release (a question over data as it
   stood) costs the key one of ``analytics_releases_per_period`` and, with differential privacy
   on, its ε; past either, the answer is refused with ``BUDGET_EXHAUSTED`` before anything is
   computed from the noise. Rephrasing a question to get a fresh draw therefore costs;
4. the noisy threshold: a noisy value is shown only at k plus ``analytics_threshold_margin`` noise
   scales or more, with secondary suppression and complements decided against it on the noisy
   values, so whether a value near k is shown is itself a draw (anything decided on true values
   flips deterministically between k - 1 and k, a one-person test).

A shown noisy value is never below k (the noisy threshold is k or above).
``exact`` answers skip step 2 and are for callers who may (admins).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy.orm import Session

from privacy.anonymity import BELOW_K, Breakdown, breakdown, count
from privacy.dp import epsilon_of, noisy_counts, scale_for
from privacy.noise import NoiseSource, discrete_laplace_std
from server.analytics.ledger import period_of, previous_answer, record_release, serialize_key, spent
from server.analytics.questions import Question
from server.settings import Settings

__all__ = [
    "Answer",
    "Asker",
    "BudgetExhausted",
    "ExactNotPermitted",
    "Figure",
    "Method",
    "Truth",
    "may_name",
    "release",
    "shown_from",
]

TOTAL = "__total__"
ERROR_BAR_STDS = 2.0
"""Bounds of an estimate widened by this many standard deviations of the noise (about 95 %)."""


class Method(enum.StrEnum):
    EXACT = "exact"
    ESTIMATE = "estimate"
    NOISY = "noisy"


class BudgetExhausted(Exception):
    """The key has no releases (or ε) left this period; says which, never what the answer was."""

    code = "BUDGET_EXHAUSTED"
    message = "this key's budget for the period is spent"


class ExactNotPermitted(Exception):
    code = "EXACT_NOT_PERMITTED"


@dataclass(frozen=True, slots=True)
class Truth:
    """What a question's answer is before it is released."""

    total: int
    cells: dict[str, int] = field(default_factory=dict)
    sensitivity: int = 1
    """How many of the released values one person can move by one (a count: 1; a breakdown: 2)."""
    bounds: dict[str, tuple[float, float]] | None = None
    """For estimates: each value's bounds (the total under ``TOTAL``); None for exact counts."""
    partition: bool = True
    """The cells split the total (a person in one cell at most), so secondary suppression applies;
    False for values that are counts of their own (the days of a trend), each floored alone."""
    complements: bool = False
    """With ``partition`` False: each cell is one side of its own split of the total (an interest
    reach: reached or not), shown only when the other side, ``total - cell``, hides at least k
    people too; otherwise "everyone but a few" (or "everyone") would be a fact about those few."""
    same_as: dict[str, tuple[Question, str]] = field(default_factory=dict)
    """Values that count exactly what a value of another question counts (a distribution's total is
    the segment's size): their sticky noise is that value's, so asking for one count inside many
    questions is asking for it once, and averaging the answers gains nothing."""


@dataclass(frozen=True, slots=True)
class Figure:
    value: int | None
    reason: str | None = None
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    method: Method
    total: Figure
    cells: dict[str, Figure]
    noise_scale: float | None
    epsilon_spent: float | None
    epsilon_left: float | None
    releases_left: int
    as_of: datetime
    shown_from: int = 0
    """The smallest value this answer could show: k when exact, the noisy threshold when noised."""


@dataclass(frozen=True, slots=True)
class Asker:
    key_id: str
    may_ask_exact: bool


def release(
    session: Session,
    asker: Asker,
    question: Question,
    truth: Truth,
    *,
    settings: Settings,
    noise: NoiseSource,
    as_of: datetime,
    exact: bool = False,
) -> Answer:
    """Release ``truth`` as the answer to ``question`` for ``asker``, recording it in the ledger.
    Raises ``ExactNotPermitted`` or ``BudgetExhausted``; the session must be a writing one."""
    if exact and not asker.may_ask_exact:
        raise ExactNotPermitted
    k = settings.anonymity_threshold
    # Exact answers: the floor with secondary suppression, all on true values. Noisy ones: only
    # the floor on each true value here; every further decision is made on the noisy values.
    floor = _floor(truth, k) if exact else _primary_floor(truth, k)
    names = [TOTAL, *truth.cells]
    true_values = [truth.total, *truth.cells.values()]
    shown = [i for i, name in enumerate(names) if _figure_of(floor, name).value is not None]
    question_digest = question.digest()
    # Named and sorted: the same values in another order are the same release.
    # Keyed: the true values range over a few thousand counts, so a plain hash of them stored in
    # the ledger would give them back to anyone who reads the table and tries each one.
    release_digest = noise.fingerprint(
        question_digest + orjson.dumps([exact, sorted(zip(names, true_values, strict=True))])
    )
    period = period_of(as_of, settings.analytics_period_days)
    dp_on = settings.dp_epsilon_per_period > 0 and not exact

    serialize_key(session, asker.key_id)
    before = spent(session, asker.key_id, period)
    given = previous_answer(session, asker.key_id, period, release_digest.hex())
    epsilon: float | None = None
    if exact:
        scale = None
        released = [true_values[i] for i in shown]
    elif dp_on:
        scale = scale_for(settings.dp_epsilon_per_answer, truth.sensitivity)
        stored = dict(given or [])
        if before.epsilon + epsilon_of(scale, truth.sensitivity) > settings.dp_epsilon_per_period + 1e-9:
            raise BudgetExhausted  # repeats too, as below
        if given is not None and all(names[i] in stored for i in shown):
            released = [int(stored[names[i]]) for i in shown]
        else:
            epsilon = epsilon_of(scale, truth.sensitivity)
            released = noisy_counts([true_values[i] for i in shown], scale)
    else:
        scale = settings.analytics_noise_scale
        released = [
            true_values[i] + _sticky(noise, *truth.same_as.get(names[i], (question, names[i])), true_values[i], scale)
            for i in shown
        ]
    if before.releases >= settings.analytics_releases_per_period:
        # Repeats too: were a repeat still answered once the budget is spent, it would be answered
        # exactly when its count had not changed (its release is keyed by the count), and refused
        # when it had, a free and noiseless detector of change.
        raise BudgetExhausted
    if given is None:
        record_release(
            session,
            key_id=asker.key_id,
            period=period,
            release=release_digest.hex(),
            question=question_digest.hex(),
            kind=question.kind,
            epsilon=epsilon,
            answer=[[names[i], value] for i, value in zip(shown, released, strict=True)] if dp_on else None,
            now=as_of,
        )
    after_releases = before.releases + (given is None)
    after_epsilon = before.epsilon + (epsilon or 0.0)
    values = dict(zip((names[i] for i in shown), released, strict=True))
    threshold = shown_from(settings, scale)
    if scale:  # a threshold at k or above: a shown noisy value is never below k
        values = _suppressed_on_noise(values, truth, threshold)
    figures = {name: _released(floor, name, values, truth, scale) for name in names}
    return Answer(
        method=Method.EXACT if exact else Method.ESTIMATE if truth.bounds is not None else Method.NOISY,
        total=figures.pop(TOTAL),
        cells=figures,
        noise_scale=scale,
        epsilon_spent=epsilon if dp_on else None,
        epsilon_left=max(0.0, settings.dp_epsilon_per_period - after_epsilon) if dp_on else None,
        releases_left=max(0, settings.analytics_releases_per_period - after_releases),
        as_of=as_of,
        shown_from=threshold,
    )


def shown_from(settings: Settings, scale: float | None) -> int:
    """The smallest count shown: k for exact answers, k plus the margin's noise scales for noisy ones."""
    k = settings.anonymity_threshold
    return k if not scale else k + math.ceil(settings.analytics_threshold_margin * scale)


def may_name(question: Question, *, settings: Settings, noise: NoiseSource, exact: bool) -> Callable[[str, int], bool]:
    """Whether a value of an open vocabulary (a region) held by ``count`` people of the population
    ``question`` counts may be named as a cell of its own (else its people are in ``other``).

    A name is released even when its count is not, so it gets the count's treatment: at least k
    people (the floor, on the true count), and for noisy answers a sticky noisy count at or above
    the noisy threshold, drawn per population, value and true count, so every question about one
    population names the same regions and a region of exactly k is named no more surely than a
    count of k is shown."""
    k = settings.anonymity_threshold
    if exact:
        return lambda _value, count: count >= k
    scale = settings.analytics_noise_scale
    threshold = shown_from(settings, scale)
    return lambda value, count: (
        count >= k and count + _sticky(noise, question, f"name:{value}", count, scale) >= threshold
    )


def _floor(truth: Truth, k: int) -> Breakdown:
    """Which true values may be shown (``privacy.anonymity``)."""
    if truth.partition:
        return breakdown(truth.cells, truth.total, k)
    if truth.complements:
        total = count(truth.total, k)
        return Breakdown(
            total,
            {
                name: breakdown({name: value, "": truth.total - value}, truth.total, k).cells[name]
                if total.value is not None
                else total
                for name, value in truth.cells.items()
            },
        )
    return Breakdown(count(truth.total, k), {name: count(value, k) for name, value in truth.cells.items()})


def _primary_floor(truth: Truth, k: int) -> Breakdown:
    """Noisy answers: each true value below k is hidden (invariant 5), and, the cells of a
    partition or of complements being parts of their total, everything when the total is."""
    total = count(truth.total, k)
    if total.value is None and (truth.partition or truth.complements):
        return Breakdown(total, {name: total for name in truth.cells})
    return Breakdown(total, {name: count(value, k) for name, value in truth.cells.items()})


def _suppressed_on_noise(noisy: dict[str, int], truth: Truth, threshold: int) -> dict[str, int]:
    """The noisy values that may be shown: at or above ``threshold`` (k plus a margin of noise
    scales), with secondary suppression and complements decided on noisy values too.

    Anything decided on true values flips deterministically at k: a population of k - 1 hidden
    where the same population plus one person is shown, a cell hidden "so the total minus the
    others does not give it away" exactly when a neighbour holds k - 1. An attacker holding a
    population of exactly k tests one person with any such flip. Decided on the noisy values
    instead, against a threshold a few scales above k, "shown" is a draw: a count of k is shown
    with the small probability that its noise exceeds the margin, one of k - 1 never (the floor),
    and near the threshold either way by noise alone. The decisions are post-processing of values
    already drawn (or read back from the ledger), so a repeat decides the same way.

    A partition's cells go with its total. When a cell is hidden, the total minus the shown cells
    must leave at least ``threshold`` unshown (noisy), else the smallest shown cells are hidden
    too. A complement (everyone but the reached) must itself reach the threshold."""
    kept = {name: value for name, value in noisy.items() if value >= threshold}
    total = kept.get(TOTAL)
    if total is None and (truth.partition or truth.complements):
        return {}
    if truth.complements and total is not None:
        return {name: value for name, value in kept.items() if name == TOTAL or total - value >= threshold}
    if truth.partition and total is not None and any(name not in kept for name in truth.cells):
        unshown = total - sum(kept.get(name, 0) for name in truth.cells)
        for name in sorted((name for name in truth.cells if name in kept), key=lambda name: (kept[name], name)):
            if unshown >= threshold:
                break
            unshown += kept.pop(name)
    return kept


def _sticky(noise: NoiseSource, question: Question, name: str, value: int, scale: float) -> int:
    """Noise per value, keyed by the question, the value's name in it and its true value: a value
    that appears in several answers (a day in trends of 7 and of 30 days) gets the same noise in
    each, so asking for it in many shapes is no way to average it."""
    return noise.draws(question.digest() + orjson.dumps([name, value]), 1, scale)[0]


def _figure_of(floor: Breakdown, name: str) -> Figure:
    count = floor.total if name == TOTAL else floor.cells[name]
    return Figure(count.value, count.reason)


def _released(floor: Breakdown, name: str, values: dict[str, int], truth: Truth, scale: float | None) -> Figure:
    hidden = _figure_of(floor, name)
    if name not in values:
        # Noisy: one reason for every hidden value, or which reason it is would be a fact about
        # true values (a complement is hidden only when its total reaches k).
        return Figure(None, BELOW_K) if scale else hidden
    value = values[name]
    if truth.bounds is None:
        return Figure(value)
    # Around the value shown, never around the estimate: a sketch of fewer than 2^lg_k members is
    # exact (its bounds are its value), so bounds of "estimate - spread, estimate + spread" would
    # give the true count back as their midpoint. Only the sketch's own error is carried over.
    estimate = truth.total if name == TOTAL else truth.cells[name]
    low, high = truth.bounds[name]
    spread = ERROR_BAR_STDS * discrete_laplace_std(scale) if scale else 0.0
    return Figure(
        value,
        low=max(0, math.floor(value - max(0.0, estimate - low) - spread)),
        high=math.ceil(value + max(0.0, high - estimate) + spread),
    )
