"""Overlaps of segments as an analyst gets them: exact and estimated truths agree within the
estimate's bounds, cells below k are suppressed (and a complement with them), inputs are checked
without naming what does not exist, and the same overlap asked in another order is one question."""

from __future__ import annotations

import pytest

from privacy.anonymity import BELOW_K
from server.analytics.overlaps import OverlapMethod, answer_overlap, estimated_truth, exact_truth, overlap_question
from server.analytics.refusals import QuestionRefused
from server.analytics.release import TOTAL, Answer, ExactNotPermitted, Method
from server.auth.principal import Principal
from server.runtime import Runtime
from tests.analytics.people import (
    ADMIN,
    ANALYST,
    EVERYONE,
    HALF,
    ODD,
    REPEAT,
    REPEATERS,
    SIZE,
    populate,
    segments,
    stored_sketches,
)

SMALL_LG_K = 5
"""32 hashes at most: a population of 180 puts the sketches in estimation mode, with real error bars."""


def _overlap(runtime: Runtime, principal: Principal, names: list[str], method: OverlapMethod, **kw: bool) -> Answer:
    with runtime.unit_of_work(principal.actor) as unit:
        return answer_overlap(unit, principal, names, method, settings=runtime.settings, **kw)


def test_exact_counts_follow_the_members(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    populate(runtime)
    with runtime.sessions() as session:
        truth = exact_truth(session, segments(runtime, [REPEAT, EVERYONE]))
    assert truth.cells == {"everyone only": SIZE - REPEATERS, "repeat only": 0, "everyone&repeat": REPEATERS}
    assert (truth.total, truth.sensitivity, truth.bounds) == (SIZE, 2, None)


@pytest.mark.parametrize("lg_k", [12, SMALL_LG_K])
def test_estimates_from_sketches_hold_the_exact_counts_within_their_bounds(
    analytics_runtime: Runtime, lg_k: int
) -> None:
    runtime = analytics_runtime
    populate(runtime)
    chosen = segments(runtime, [EVERYONE, REPEAT, HALF, ODD])
    with runtime.sessions() as session:
        exact = exact_truth(session, chosen)
    with runtime.unit_of_work(ANALYST.actor) as unit:
        estimate = estimated_truth(unit.session, chosen, now=unit.clock(), lg_k=lg_k)
    assert estimate.bounds is not None
    assert set(estimate.cells) == set(exact.cells)
    assert len(exact.cells) == 15, "four segments: fifteen cells"
    values = [*exact.cells.items(), (TOTAL, exact.total)]
    outside = [(key, value, *estimate.bounds[key]) for key, value in values if not _within(value, estimate.bounds[key])]
    # Bounds are two standard deviations (about 95 % each): exact sketches hold every value; in
    # estimation mode, with sixteen values, one or two may fall outside, never most.
    assert len(outside) <= (0 if lg_k == 12 else 3), outside
    if lg_k == 12:  # fewer members than 2^lg_k: the sketch keeps every hash, the estimate is exact
        assert (estimate.cells, estimate.total) == (exact.cells, exact.total)
    else:
        widths = [high - low for low, high in estimate.bounds.values()]
        assert max(widths) > 0, "in estimation mode the bounds are an interval"
    assert set(stored_sketches(runtime)) == {segment.id for segment in chosen}, "each sketch is kept for next time"


def _within(value: int, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def test_a_cell_below_k_is_suppressed_with_a_complement_and_estimates_carry_bounds(analytics_runtime: Runtime) -> None:
    """``odd&repeat`` holds the 5 people with three events (below k); ``odd only`` (60, the smallest
    shown) goes too, or the total minus the shown cells would give the hidden one back. Decided on
    noisy values, every hidden cell says ``below_k``."""
    runtime = analytics_runtime
    populate(runtime)
    for method in OverlapMethod:
        answer = _overlap(runtime, ANALYST, [REPEAT, ODD], method)
        assert answer.method is (Method.ESTIMATE if method is OverlapMethod.ESTIMATE else Method.NOISY)
        reasons = {key: figure.reason for key, figure in answer.cells.items()}
        assert reasons == {"odd&repeat": BELOW_K, "odd only": BELOW_K, "repeat only": None}
        assert answer.cells["odd&repeat"].value is None
        assert answer.cells["odd only"].value is None
        shown = answer.cells["repeat only"]
        assert shown.value is not None
        assert answer.total.value is not None
        if method is OverlapMethod.ESTIMATE:
            assert shown.low is not None
            assert shown.high is not None
            assert shown.low <= shown.value <= shown.high
            # Centred on the value shown, never on the estimate: a sketch this small is exact, and
            # bounds around it would give the true count back as their midpoint.
            assert shown.low + shown.high in (2 * shown.value - 1, 2 * shown.value, 2 * shown.value + 1)
        else:
            assert shown.low is None
            assert shown.high is None


def test_an_admin_may_ask_for_the_exact_figures_and_an_analyst_may_not(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    populate(runtime)
    answer = _overlap(runtime, ADMIN, [REPEAT, EVERYONE], OverlapMethod.EXACT, exact=True)
    assert (answer.method, answer.total.value, answer.cells["everyone&repeat"].value) == (
        Method.EXACT,
        SIZE,
        REPEATERS,
    )
    with pytest.raises(ExactNotPermitted):
        _overlap(runtime, ANALYST, [REPEAT, EVERYONE], OverlapMethod.EXACT, exact=True)


@pytest.mark.parametrize(
    ("names", "code"),
    [
        ([EVERYONE], "BAD_INPUT"),
        ([EVERYONE, EVERYONE], "BAD_INPUT"),
        ([EVERYONE, REPEAT, HALF, ODD, "a2"], "BAD_INPUT"),
        ([EVERYONE, "no-such-segment"], "UNKNOWN_SEGMENT"),
        (["Everyone", REPEAT], "UNKNOWN_SEGMENT"),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_released(
    analytics_runtime: Runtime, names: list[str], code: str
) -> None:
    runtime = analytics_runtime
    populate(runtime)
    with pytest.raises(QuestionRefused) as refused:
        _overlap(runtime, ANALYST, names, OverlapMethod.ESTIMATE)
    assert (refused.value.field, refused.value.code) == ("segments", code)
    for name in names:
        assert name not in refused.value.message, "the refusal names no segment, existing or not"
    fresh = _overlap(runtime, ANALYST, [EVERYONE, REPEAT], OverlapMethod.ESTIMATE)
    assert fresh.releases_left == runtime.settings.analytics_releases_per_period - 1, "the refusals cost nothing"


def test_the_same_overlap_in_another_order_is_one_question_and_one_release(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    populate(runtime)
    assert overlap_question(segments(runtime, [HALF, EVERYONE]), OverlapMethod.ESTIMATE) == overlap_question(
        segments(runtime, [EVERYONE, HALF]), OverlapMethod.ESTIMATE
    )
    first = _overlap(runtime, ANALYST, [HALF, EVERYONE, REPEAT], OverlapMethod.ESTIMATE)
    again = _overlap(runtime, ANALYST, [REPEAT, EVERYONE, HALF], OverlapMethod.ESTIMATE)
    assert again == first, "same cells, same noise, and no second release spent"
    assert list(first.cells) == [
        "everyone only",
        "half only",
        "repeat only",
        "everyone&half",
        "everyone&repeat",
        "half&repeat",
        "everyone&half&repeat",
    ]
