"""Profile distributions as the service releases them, on SQLite and PostgreSQL: what is suppressed,
what the bins are, where quantiles come from, how thresholds snap, and what is refused."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from server.analytics import distributions
from server.analytics.bins import COUNTS, NUMERIC_BINS
from server.analytics.distributions import MixBy, MixDimension, QuantileAnswer
from server.analytics.quantiles import NONE_CELL, quantiles_of
from server.analytics.refusals import QuestionRefused
from server.analytics.release import Answer, Figure, Method, shown_from
from server.auth.principal import Principal, Role
from server.runtime import Runtime, UnitOfWork, build_runtime
from server.segments.catalogue import FEATURES, FeatureKind
from server.settings import Settings
from server.taxonomy.taxonomy import Taxonomy, taxonomy_for
from tests.analytics.conftest import QUIET
from tests.ingest.batches import EVERYTHING, event, fixed_clock, ingest
from tests.partners.visitors import RUNNING, SENSITIVE
from tests.segments.segment_steps import add_segment

K = 10
ANALYST = Principal(key_id="analyst-key", role=Role.ANALYST)
ADMIN = Principal(key_id="admin-key", role=Role.ADMIN)
PURCHASES = "purchases_lifetime"
TRAVEL = "travel"
_people = itertools.count(1)
T = TypeVar("T")


@pytest.fixture
def analytics(settings: Settings) -> Iterator[Runtime]:
    """A runtime with k at its floor (10), so a few dozen people show counts and a few are hidden;
    noise of scale 1 (``tests.analytics.conftest.QUIET``)."""
    built = build_runtime(settings.model_copy(update=QUIET))
    try:
        yield fixed_clock(built)
    finally:
        built.dispose()


@pytest.fixture
def taxonomy() -> Taxonomy:
    return taxonomy_for(None)


def people(
    runtime: Runtime, count: int, *, purchases: int = 0, amount: float = 10.0, topics: list[str] | None = None
) -> list[str]:
    """``count`` new people consenting to every purpose, each with ``purchases`` purchases of ``amount``
    (or, with none, one page view), about ``topics``."""
    emails = [f"p{next(_people)}@example.org" for _ in range(count)]
    shared: dict[str, Any] = {"consent_purposes": EVERYTHING, "topics": topics}
    records = [
        event(email=email, event="purchase", amount=amount, currency="EUR", **shared)
        for email in emails
        for _ in range(purchases)
    ] or [event(email=email, **shared) for email in emails]
    ingest(runtime, records)
    return emails


def buy_again(runtime: Runtime, emails: list[str]) -> None:
    ingest(
        runtime,
        [event(email=e, event="purchase", amount=10.0, currency="EUR", consent_purposes=EVERYTHING) for e in emails],
    )


def asked(runtime: Runtime, work: Callable[[UnitOfWork], T]) -> T:
    with runtime.unit_of_work(ANALYST.actor) as unit:
        return work(unit)


def distribution(runtime: Runtime, taxonomy: Taxonomy, feature: str, **options: Any) -> Answer:
    principal = options.pop("principal", ANALYST)
    return asked(
        runtime,
        lambda unit: distributions.feature_distribution(
            unit, principal, feature=feature, taxonomy=taxonomy, settings=runtime.settings, **options
        ),
    )


def quantiles(runtime: Runtime, taxonomy: Taxonomy, feature: str, qs: list[float], **options: Any) -> QuantileAnswer:
    principal = options.pop("principal", ANALYST)
    return asked(
        runtime,
        lambda unit: distributions.feature_quantiles(
            unit,
            principal,
            feature=feature,
            segment=options.pop("segment", None),
            quantiles=qs,
            taxonomy=taxonomy,
            settings=runtime.settings,
            **options,
        ),
    )


def reach(runtime: Runtime, taxonomy: Taxonomy, topics: list[str], min_score: float, **options: Any) -> Answer:
    principal = options.pop("principal", ANALYST)
    return asked(
        runtime,
        lambda unit: distributions.interest_reach_of(
            unit,
            principal,
            topics=topics,
            min_score=min_score,
            segment=options.pop("segment", None),
            taxonomy=taxonomy,
            settings=runtime.settings,
            **options,
        ),
    )


def refusal(work: Callable[[], object]) -> QuestionRefused:
    with pytest.raises(QuestionRefused) as refused:
        work()
    return refused.value


def values(answer: Answer) -> dict[str, int | None]:
    return {name: figure.value for name, figure in answer.cells.items()}


def test_a_histogram_hides_cells_below_k_and_the_cell_that_would_give_them_away(
    analytics: Runtime, taxonomy: Taxonomy
) -> None:
    people(analytics, 120, purchases=1)
    people(analytics, 60, purchases=2)
    people(analytics, 3, purchases=3)
    exact = distribution(analytics, taxonomy, PURCHASES, segment=None, principal=ADMIN, exact=True)
    assert (exact.total.value, exact.cells["[1, 2)"].value) == (183, 120)
    # Exact: the floor and secondary suppression on true values (183 - 120 - 60 would give the 3
    # away, so the smallest shown bin goes with them), each hidden cell saying why.
    assert {exact.cells[name].reason for name in ("[0, 1)", "[3, 5)")} == {"below_k"}
    assert exact.cells["[2, 3)"].reason == "complement"

    noisy = distribution(analytics, taxonomy, PURCHASES, segment=None)
    reasons = {name: figure.reason for name, figure in noisy.cells.items()}
    assert reasons["[3, 5)"] == "below_k"  # 3 people
    assert reasons["[0, 1)"] == "below_k"  # nobody: a fact too
    # Else the noisy total minus the shown bins would leave about 3: the smallest shown bin goes
    # too, decided on the noisy values, and with the one reason every hidden noisy value has.
    assert reasons["[2, 3)"] == "below_k"
    assert noisy.cells["[1, 2)"].value is not None
    assert noisy.cells["[1, 2)"].value >= shown_from(analytics.settings, 1.0), "shown from the noisy threshold up"
    assert noisy.method.value == "noisy"
    assert noisy.noise_scale == analytics.settings.analytics_noise_scale


def test_numeric_bins_are_the_servers_whatever_the_data(analytics: Runtime, taxonomy: Taxonomy) -> None:
    before = distribution(analytics, taxonomy, "revenue_lifetime", segment=None)
    people(analytics, 70, purchases=1)  # [10, 20), well past the noisy threshold (k + 3 scales: 25)
    people(analytics, 40, purchases=1, amount=30.0)  # [20, 50): the smallest shown, hidden with the 3
    people(analytics, 3, purchases=7)  # [50, 100): below k
    after = distribution(analytics, taxonomy, "revenue_lifetime", segment=None)
    fixed = (*NUMERIC_BINS["revenue_lifetime"].labels, NONE_CELL)
    assert tuple(before.cells) == tuple(after.cells) == fixed
    assert after.cells["[10, 20)"].value is not None
    # The other bins are empty or small and hidden: the smallest shown one goes with them, or the
    # total minus the shown cells would tell how few they hold.
    assert (after.cells["[50, 100)"].reason, after.cells["[20, 50)"].reason) == ("below_k", "below_k")
    numeric = {f.name for f in FEATURES.values() if f.kind in (FeatureKind.INTEGER, FeatureKind.NUMBER)}
    assert set(NUMERIC_BINS) == numeric


def test_quantiles_come_from_the_released_histogram_never_a_members_value(
    analytics: Runtime, taxonomy: Taxonomy
) -> None:
    # Every one of the 160 has exactly 6 purchases: bin [5, 10). 12 more in [1, 2), hidden (below the
    # noisy threshold), and 50 in [2, 3), hidden with them (else the total minus [5, 10) would say
    # about 12): where those 62 are is unknown, so a quantile is given only where it falls in
    # [5, 10) wherever they are (the median: rank 111 of 222, from 49 to 111 among the 160), at
    # the middle of its range. The margins (49 people either way) are far beyond the noise.
    buyers = people(analytics, 160, purchases=6)
    people(analytics, 12, purchases=1)
    people(analytics, 50, purchases=2)
    qs = [0.25, 0.5, 0.75]
    exact = quantiles(analytics, taxonomy, PURCHASES, qs, principal=ADMIN, exact=True)
    # Exact: [2, 3) is hidden with the 12 (secondary suppression); q = 0.25 could lie among them.
    assert [x.value for x in exact.quantiles] == [None, 6.71875, 8.453125]  # interpolated, never 6

    first = quantiles(analytics, taxonomy, PURCHASES, qs)
    assert first.quantiles[1].value is not None  # noise hides at most a few people: the median is in [5, 10)
    given = [x.value for x in first.quantiles if x.value is not None]
    assert all(5 <= value <= 10 and value not in (6, 7) for value in given), first.quantiles
    buy_again(analytics, buyers)  # now every one has 7: the same released histogram, the same quantiles
    second = quantiles(analytics, taxonomy, PURCHASES, qs)
    assert second.quantiles == first.quantiles
    assert second.histogram.releases_left == first.histogram.releases_left  # a repeat costs nothing

    lonely = quantiles(analytics, taxonomy, "days_since_last_purchase", [0.5])
    assert lonely.quantiles[0].reason == "suppressed"  # [0, 1) holds everyone: that is not shown
    ends = quantiles(analytics, taxonomy, PURCHASES, [0.0, 1.0])
    assert all(x.value is None or x.value in (5, 10) for x in ends.quantiles)  # an edge at most, never 6 or 7


def test_a_quantile_hidden_people_could_move_is_not_given() -> None:
    """40 people shown in [1, 2) and [2, 3), 8 hidden (a total of 48): the lowest and highest
    quantiles could lie among the hidden, the median cannot (its rank among the 40 shown is 16 to 24
    wherever the hidden are, all in [1, 2)), and is interpolated at rank 20."""
    figures = {label: Figure(None, "below_k") for label in COUNTS.labels}
    figures.update({"[1, 2)": Figure(30), "[2, 3)": Figure(10), NONE_CELL: Figure(None, "below_k")})
    released = Answer(Method.NOISY, Figure(48), figures, 5.0, None, None, 10, datetime.now(UTC))
    low, middle, high = quantiles_of(released, COUNTS, [0.05, 0.5, 0.95])
    assert (low.value, low.reason, high.value, high.reason) == (None, "suppressed", None, "suppressed")
    assert middle.value == round(1 + 20 / 30, 6)
    suppressed_total = Answer(Method.NOISY, Figure(None, "below_k"), figures, 5.0, None, None, 10, datetime.now(UTC))
    assert {x.reason for x in quantiles_of(suppressed_total, COUNTS, [0.5])} == {"suppressed"}


def test_a_quantile_in_the_open_last_bin_is_not_given(analytics: Runtime, taxonomy: Taxonomy) -> None:
    people(analytics, 20, purchases=1, amount=15_000.0)  # [10000, inf): its upper end is not known
    people(analytics, 12, purchases=1)  # [10, 20)
    people(analytics, 5, purchases=1, amount=3.0)  # [1, 5) and [5, 10): hidden, 10 people together
    people(analytics, 5, purchases=1, amount=7.0)
    answer = quantiles(analytics, taxonomy, "revenue_lifetime", [0.28, 0.75], principal=ADMIN, exact=True)
    assert answer.quantiles[0].value == 15.633333  # rank 1.76 to 11.76 of the 12 in [10, 20)
    assert (answer.quantiles[1].value, answer.quantiles[1].reason) == (None, "open_bin")


def test_min_score_snaps_down_so_close_thresholds_are_one_question(analytics: Runtime, taxonomy: Taxonomy) -> None:
    people(analytics, 70, purchases=1, topics=[TRAVEL])
    people(analytics, 60, topics=[TRAVEL, RUNNING])
    people(analytics, 70, topics=["food-and-drink/cooking"])  # not reached: "everyone" is not shown
    low, high = reach(analytics, taxonomy, [TRAVEL], 0.51), reach(analytics, taxonomy, [TRAVEL], 0.54)
    assert low == high
    near, far = reach(analytics, taxonomy, [TRAVEL], 0.11), reach(analytics, taxonomy, [TRAVEL], 0.14)
    assert near == far
    assert near.cells[TRAVEL].value is not None, "130 reached and 70 not: both far past the threshold"
    assert distributions.snap_score(0.513) == distributions.snap_score(0.512) == 0.5
    assert distributions.snap_score(0.55) == 0.55

    everyone = reach(analytics, taxonomy, [TRAVEL], 0.1, principal=ADMIN, exact=True)
    assert (everyone.total.value, everyone.cells[TRAVEL].value) == (200, 130)
    runners = reach(analytics, taxonomy, [RUNNING], 0.1, principal=ADMIN, exact=True)
    assert runners.cells[RUNNING].value == 60
    buyers = reach(analytics, taxonomy, [TRAVEL], 0.45, principal=ADMIN, exact=True)
    assert buyers.cells[TRAVEL].value == 70  # a purchase scores about 0.5, a page view about 0.17
    both = reach(analytics, taxonomy, [TRAVEL, RUNNING], 0.1)
    assert list(both.cells) == [RUNNING, TRAVEL]  # sorted: the same question in any order
    assert both == reach(analytics, taxonomy, [RUNNING, TRAVEL, RUNNING], 0.1)


def test_reach_refuses_sensitive_unknown_topics_and_thresholds_off_the_grid(
    analytics: Runtime, taxonomy: Taxonomy
) -> None:
    sensitive = refusal(lambda: reach(analytics, taxonomy, [TRAVEL, SENSITIVE], 0.5))
    assert (sensitive.field, sensitive.code) == ("topics", "SENSITIVE_TOPIC")
    unknown = refusal(lambda: reach(analytics, taxonomy, ["jane-doe-lives-at-12"], 0.5))
    assert (unknown.code, "jane" in unknown.message) == ("UNKNOWN_TOPIC", False)
    assert refusal(lambda: reach(analytics, taxonomy, [TRAVEL], 0.04)).code == "INVALID_SCORE"
    assert refusal(lambda: reach(analytics, taxonomy, [TRAVEL], 1.5)).code == "INVALID_SCORE"
    assert refusal(lambda: reach(analytics, taxonomy, [], 0.5)).code == "INVALID_TOPICS"


def test_unknown_features_and_segments_are_refused_without_repeating_them(
    analytics: Runtime, taxonomy: Taxonomy
) -> None:
    feature = refusal(lambda: distribution(analytics, taxonomy, "email_of_jane", segment=None))
    assert (feature.field, feature.code) == ("feature", "UNKNOWN_FEATURE")
    assert "jane" not in feature.message
    segment = refusal(lambda: distribution(analytics, taxonomy, PURCHASES, segment="jane-doe"))
    assert (segment.field, segment.code) == ("segment", "UNKNOWN_SEGMENT")
    assert "jane" not in segment.message
    banded = refusal(lambda: quantiles(analytics, taxonomy, "lifecycle", [0.5]))
    assert banded.code == "NOT_NUMERIC"
    assert refusal(lambda: quantiles(analytics, taxonomy, PURCHASES, [1.5])).code == "INVALID_QUANTILES"


def test_a_segment_restricts_the_population_and_names_the_question(analytics: Runtime, taxonomy: Taxonomy) -> None:
    from server.segments.evaluate import evaluate_population
    from server.segments.rules import Compare, CompareOp

    people(analytics, 12, purchases=2)
    people(analytics, 15, purchases=1)
    add_segment(analytics, "repeat-buyers", Compare(PURCHASES, CompareOp.GE, 2))
    evaluate_population(analytics)
    within = distribution(analytics, taxonomy, PURCHASES, segment="repeat-buyers", principal=ADMIN, exact=True)
    # Every member is in [2, 3): shown beside the empty bins, it would say so of each of them.
    assert (within.total.value, within.cells["[2, 3)"].reason, within.cells["[1, 2)"].reason) == (
        12,
        "complement",
        "below_k",
    )
    everyone = distribution(analytics, taxonomy, PURCHASES, segment=None, principal=ADMIN, exact=True)
    assert everyone.total.value == 27


def test_a_mix_crosses_every_stage_with_every_band(analytics: Runtime, taxonomy: Taxonomy) -> None:
    people(analytics, 12, purchases=1)
    mix = asked(
        analytics,
        lambda unit: distributions.profile_mix_of(
            unit,
            ADMIN,
            dimension=MixDimension.LIFECYCLE,
            by=MixBy.AGE_BAND,
            segment=None,
            taxonomy=taxonomy,
            settings=analytics.settings,
            exact=True,
        ),
    )
    assert mix.total.value == 12
    assert len(mix.cells) == (4 + 1) * (7 + 1)
    # One cell holds them all (new, no age band): shown, it would say so of each of them.
    assert sum(value or 0 for value in values(mix).values()) == 0
    assert mix.cells[f"new|{NONE_CELL}"].reason == "complement"


def test_only_admins_may_ask_for_exact_counts(analytics: Runtime, taxonomy: Taxonomy) -> None:
    from server.analytics.release import ExactNotPermitted

    with pytest.raises(ExactNotPermitted):
        distribution(analytics, taxonomy, PURCHASES, segment=None, exact=True)
