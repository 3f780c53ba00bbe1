"""Profile distributions for analysts: feature histograms and their quantiles, interest reach, and
lifecycle or value-tier mixes by region or age band, each released through ``release``.

Each entry point checks its input first (``QuestionRefused``: nothing is counted or spent for a
refused question), names the question canonically (``Question.of``: the same question however it
is phrased, so a rephrasing cannot buy a fresh draw of noise), then counts the people countable
now, optionally within one segment (``features_now``), in the caller's transaction.

Interest thresholds are snapped *down* to a grid of ``SCORE_STEP``: scores are continuous, so
"score >= 0.512" and "score >= 0.513" may differ by one person, and their difference would single
that person out; on the grid both are "score >= 0.50" and get the same answer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import polars as pl

from server.analytics.bins import NUMERIC_BINS
from server.analytics.features_now import Population, countable_features, population_of
from server.analytics.histograms import feature_histogram, interest_reach, profile_mix
from server.analytics.quantiles import Quantile, quantiles_of
from server.analytics.questions import Question
from server.analytics.refusals import QuestionRefused
from server.analytics.release import TOTAL, Answer, Truth, may_name
from server.analytics.service import answer
from server.analytics.sizes import size_question
from server.auth.principal import Principal
from server.runtime import UnitOfWork
from server.segments.catalogue import FEATURES
from server.segments.rule_frame import Needs, interest_score_column
from server.settings import Settings
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "MAX_QUANTILES",
    "MAX_TOPICS",
    "SCORE_STEP",
    "MixBy",
    "MixDimension",
    "QuantileAnswer",
    "counted_once",
    "feature_distribution",
    "feature_quantiles",
    "interest_reach_of",
    "population_question",
    "profile_mix_of",
    "reach_question",
    "snap_score",
]

SCORE_STEP: Final = 0.05
_STEPS_PER_UNIT: Final = 20
EVERYONE: Final = "countable_people"
"""The question whose total is everyone countable (a distribution asked of no segment)."""
MAX_TOPICS: Final = 20
MAX_QUANTILES: Final = 19


class MixDimension(enum.StrEnum):
    LIFECYCLE = "lifecycle"
    VALUE_TIER = "value_tier"


class MixBy(enum.StrEnum):
    REGION = "region"
    AGE_BAND = "age_band"


@dataclass(frozen=True, slots=True)
class QuantileAnswer:
    """Quantiles and the released histogram they were read from."""

    histogram: Answer
    quantiles: list[Quantile]


def feature_distribution(
    unit: UnitOfWork,
    principal: Principal,
    *,
    feature: str,
    segment: str | None,
    taxonomy: Taxonomy,
    settings: Settings,
    exact: bool = False,
) -> Answer:
    """Countable people per value of ``feature`` (per fixed bin for a number)."""
    if feature not in FEATURES:
        raise QuestionRefused("feature", "UNKNOWN_FEATURE", "unknown feature; docs/segments.md lists them")
    population = population_of(unit.session, segment)
    question = distribution_question(feature, population.canonical())
    named = may_name(population_question(population), settings=settings, noise=unit.kit.noise, exact=exact)
    return answer(
        unit,
        principal,
        question,
        lambda session: counted_once(
            feature_histogram(_frame(unit, population, [feature], taxonomy), feature, named=named), population
        ),
        settings=settings,
        exact=exact,
    )


def distribution_question(feature: str, segment: tuple[int, int] | None) -> Question:
    """One question per feature (and its bins) and segment version, whoever asks: the published
    breakdowns (``publish``) use it too, so SQL readers and GraphQL callers get the same numbers."""
    bins = NUMERIC_BINS.get(feature)
    return Question.of(
        "distribution",
        feature=feature,
        bins=None if bins is None else [bins.scale, list(bins.edges), bins.ceiling],
        segment=segment,
    )


def feature_quantiles(
    unit: UnitOfWork,
    principal: Principal,
    *,
    feature: str,
    segment: str | None,
    quantiles: Sequence[float],
    taxonomy: Taxonomy,
    settings: Settings,
    exact: bool = False,
) -> QuantileAnswer:
    """``quantiles`` of a numeric feature, read off its released histogram (``server.analytics.quantiles``):
    the same question as ``feature_distribution``, so asking both costs one release."""
    if feature not in FEATURES:
        raise QuestionRefused("feature", "UNKNOWN_FEATURE", "unknown feature; docs/segments.md lists them")
    bins = NUMERIC_BINS.get(feature)
    if bins is None:
        raise QuestionRefused("feature", "NOT_NUMERIC", "quantiles are for numeric features")
    if not quantiles or len(quantiles) > MAX_QUANTILES:
        raise QuestionRefused("quantiles", "INVALID_QUANTILES", f"ask for 1 to {MAX_QUANTILES} quantiles")
    if not all(0.0 <= q <= 1.0 for q in quantiles):
        raise QuestionRefused("quantiles", "INVALID_QUANTILES", "a quantile is between 0 and 1")
    histogram = feature_distribution(
        unit, principal, feature=feature, segment=segment, taxonomy=taxonomy, settings=settings, exact=exact
    )
    return QuantileAnswer(histogram, quantiles_of(histogram, bins, quantiles))


def snap_score(min_score: float) -> float:
    """``min_score`` down to the grid of ``SCORE_STEP`` (0.54 and 0.51 are both 0.50)."""
    return math.floor(min_score * _STEPS_PER_UNIT + 1e-9) / _STEPS_PER_UNIT


def interest_reach_of(
    unit: UnitOfWork,
    principal: Principal,
    *,
    topics: Sequence[str],
    min_score: float,
    segment: str | None,
    taxonomy: Taxonomy,
    settings: Settings,
    exact: bool = False,
) -> Answer:
    """Per topic, the countable people whose interest score is at least ``min_score`` (snapped)."""
    asked = sorted(set(topics))
    if not asked or len(asked) > MAX_TOPICS:
        raise QuestionRefused("topics", "INVALID_TOPICS", f"ask for 1 to {MAX_TOPICS} topics")
    for topic in asked:
        if topic not in taxonomy:
            raise QuestionRefused("topics", "UNKNOWN_TOPIC", "a topic is not in the taxonomy")
        if taxonomy.is_sensitive(topic):
            raise QuestionRefused(
                "topics",
                "SENSITIVE_TOPIC",
                "a topic is a special category of data (GDPR Art. 9): interests in it are never counted",
            )
    snapped = snap_score(min_score) if math.isfinite(min_score) else 0.0
    if not SCORE_STEP <= snapped <= 1.0:
        raise QuestionRefused("minScore", "INVALID_SCORE", f"the score is between {SCORE_STEP} and 1")
    population = population_of(unit.session, segment)
    question = reach_question(asked, snapped, population)
    columns = [interest_score_column(topic) for topic in asked]
    needs = Needs(topics=frozenset(asked))
    return answer(
        unit,
        principal,
        question,
        lambda session: counted_once(
            interest_reach(_frame(unit, population, columns, taxonomy, needs), asked, snapped),
            population,
            {topic: (reach_question([topic], snapped, population), topic) for topic in asked},
        ),
        settings=settings,
        exact=exact,
    )


def profile_mix_of(
    unit: UnitOfWork,
    principal: Principal,
    *,
    dimension: MixDimension,
    by: MixBy,
    segment: str | None,
    taxonomy: Taxonomy,
    settings: Settings,
    exact: bool = False,
) -> Answer:
    """Countable people per (stage or tier, region or age band): cells ``"active|FR-IDF"``."""
    population = population_of(unit.session, segment)
    question = Question.of("mix", dimension=dimension.value, by=by.value, segment=population.canonical())
    named = may_name(population_question(population), settings=settings, noise=unit.kit.noise, exact=exact)
    return answer(
        unit,
        principal,
        question,
        lambda session: counted_once(
            profile_mix(
                _frame(unit, population, [dimension.value, by.value], taxonomy), dimension.value, by.value, named=named
            ),
            population,
        ),
        settings=settings,
        exact=exact,
    )


def reach_question(topics: Sequence[str], min_score: float, population: Population) -> Question:
    """``topics`` sorted, ``min_score`` snapped: the canonical question."""
    return Question.of("reach", topics=list(topics), min_score=min_score, segment=population.canonical())


def population_question(population: Population) -> Question:
    """The question whose total is the count of ``population``: a segment's size, or everyone's."""
    if population.segment_id is None:
        return Question.of(EVERYONE)
    return size_question(population.segment_id)


def counted_once(truth: Truth, population: Population, cells: dict[str, tuple[Question, str]] | None = None) -> Truth:
    """``truth`` with its total released as the population's own count (``Truth.same_as``), and
    ``cells`` as the values of the questions given: the same count asked inside any number of
    questions (a segment's size as the total of each of its feature histograms, a topic's reach
    inside any set of topics) gets one noisy value, not one draw per question to average."""
    return replace(truth, same_as={TOTAL: (population_question(population), TOTAL), **(cells or {})})


def _frame(
    unit: UnitOfWork, population: Population, columns: list[str], taxonomy: Taxonomy, needs: Needs | None = None
) -> pl.DataFrame:
    return countable_features(
        unit.session,
        population,
        columns=columns,
        needs=needs or Needs(),
        as_of=unit.clock(),
        config=unit.profiles,
        taxonomy=taxonomy,
    )
