"""Budgets and what no noise can hide, probed over HTTP on a server whose keys get 30 new answers a day.

A rephrasing attacker asks one count in ever new words (topic sets, thresholds, rules) to collect
independent draws of noise and average them; the budget must cut that off at the configured limit,
and a refusal must look the same whatever the data holds. And the boundary at k: a population of
exactly k and the same population minus one person must not be told apart by whether it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import pytest

from privacy.keyring import Keyring
from server.auth.principal import Role
from tests.partners.visitors import RUNNING, record_consent, send
from tests.privacy.analytics_probing import NOBODY, REACH, SIZE, ask, far_cohort, far_day, released, segment
from tests.segments.conftest import marketing_server
from tests.segments.marketing import PREVIEW, SHOWN, K, call, page_view
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with

__all__ = ["marketing_server"]

RELEASES: Final = 30
TRAVEL: Final = "travel"
TOPICS: Final = (RUNNING, "food-and-drink/cooking", "automotive", "sports", "music-and-audio", "books-and-literature")


@pytest.fixture(scope="session")
def budget_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    with server_with(
        request,
        server_backend,
        tmp_path_factory,
        keyring,
        "budget",
        anonymity_threshold=str(K),
        segment_poll_seconds="0.2",
        analytics_releases_per_period=str(RELEASES),
        # The longest period (366 UTC days from 1970-01-01): a test that spent its key's releases
        # on one side of a UTC midnight would find them given back on the other.
        analytics_period_days="366",
    ) as server:
        yield server


def _rephrasings() -> Iterator[dict[str, Any]]:
    """One count (travel's reach) in ever new words: other topics beside it, other thresholds."""
    for score in (0.05, 0.1, 0.15, 0.2, 0.25):
        for extra in TOPICS:
            yield {"t": [TRAVEL, extra], "min": score}
        yield {"t": [TRAVEL], "min": score}


def _codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["errors"]]


def test_a_rephrasing_attack_is_cut_off_at_the_limit_and_repeats_stay_free(budget_server: LiveServer) -> None:
    """Thirty-five phrasings: thirty are answered, each costing one, a repeat among them costs
    nothing and gives the same numbers; then every question is refused with ``BUDGET_EXHAUSTED``
    and no figure, repeats included (were they answered, they would be answered exactly when their
    count had not changed)."""
    server = budget_server
    analyst = server.issue_key(Role.ANALYST)
    name = segment(server, far_cohort(server, SHOWN, topics=[TRAVEL]).rule_text)
    answered: list[tuple[dict[str, Any], dict[str, Any]]] = []
    refused = 0
    first = dict(next(iter(_rephrasings())))
    for n, variables in enumerate(_rephrasings()):
        payload = ask(server, analyst, REACH, s=name, **variables)
        if n == 1:  # a repeat of the first before the budget is spent: same numbers, nothing spent
            again = ask(server, analyst, REACH, s=name, **first)["aggregate"]
            assert again["releasesLeft"] == RELEASES - 2
        if payload["aggregate"] is None:
            assert _codes(payload) == ["BUDGET_EXHAUSTED"], payload
            refused += 1
        else:
            answered.append((variables, payload["aggregate"]))
    assert (len(answered), refused) == (RELEASES, 35 - RELEASES)
    assert [aggregate["releasesLeft"] for _, aggregate in answered] == list(range(RELEASES - 1, -1, -1))
    assert (again["total"], again["cells"]) == (answered[0][1]["total"], answered[0][1]["cells"]), "a free repeat"
    for variables, _ in answered[::7]:
        assert _codes(ask(server, analyst, REACH, s=name, **variables)) == ["BUDGET_EXHAUSTED"], "repeats too, now"
    budget = call(server, analyst, "{ analyticsBudget { releasesSpent releasesLeft } }")["analyticsBudget"]
    assert budget == {"releasesSpent": RELEASES, "releasesLeft": 0}


def test_a_refusal_is_the_same_whatever_the_data_holds(budget_server: LiveServer) -> None:
    """Once the budget is spent, new questions about segments of nobody, of k - 1, of k + 5 and of
    3k people are refused in the very same words: nothing in a refusal depends on a count."""
    server = budget_server
    analyst = server.issue_key(Role.ANALYST)
    names = [
        segment(server, NOBODY, "nobody"),
        segment(server, far_cohort(server, K - 1, topics=[TRAVEL]).rule_text, "few"),
        segment(server, far_cohort(server, K + 5, topics=[TRAVEL]).rule_text, "some"),
        segment(server, far_cohort(server, 3 * K, topics=[TRAVEL]).rule_text, "many"),
    ]
    for n in range(RELEASES):
        ask(
            server,
            analyst,
            REACH,
            s=names[n % len(names)],
            t=[TRAVEL, TOPICS[n % len(TOPICS)]],
            min=0.05 * (1 + n // 6),
        )
    refusals = {
        name: [
            ask(server, analyst, SIZE, s=name),
            ask(server, analyst, REACH, s=name, t=[TRAVEL], min=0.5),
            ask(server, analyst, SIZE, s=name, x=True),
        ]
        for name in names
    }
    first = refusals[names[0]]
    assert [payload["aggregate"] for payload in first] == [None, None, None]
    assert [_codes(payload) for payload in first] == [
        ["BUDGET_EXHAUSTED"],
        ["BUDGET_EXHAUSTED"],
        ["EXACT_NOT_PERMITTED"],
    ]
    assert all(answers == first for answers in refusals.values()), refusals


def test_a_marketers_rephrased_previews_are_cut_off_at_the_limit(budget_server: LiveServer) -> None:
    """The same rule in ever new words (``and`` one more condition true of everyone): each preview
    costs its size and breakdowns, and past the limit a preview is refused, not answered."""
    server = budget_server
    marketer = server.issue_key(Role.MARKETER)
    group = far_cohort(server, K + 5)
    outcomes = []
    for extra in range(RELEASES):
        rule = group.rule_text + "".join(f' and events("page_view") >= 0 from {group.day} to {group.day}' * extra)
        payload = call(server, marketer, PREVIEW, ruleText=rule)["previewSegment"]
        outcomes.append("answered" if payload["preview"] is not None else _codes(payload)[0])
    assert "BUDGET_EXHAUSTED" in outcomes, outcomes
    refused_from = outcomes.index("BUDGET_EXHAUSTED")
    assert set(outcomes[refused_from:]) == {"BUDGET_EXHAUSTED"}, outcomes
    spent = call(server, marketer, "{ analyticsBudget { releasesSpent } }")["analyticsBudget"]["releasesSpent"]
    assert spent <= RELEASES


def test_once_the_budget_is_spent_a_repeat_does_not_tell_whether_its_count_changed(budget_server: LiveServer) -> None:
    server = budget_server
    analyst = server.issue_key(Role.ANALYST)
    watched = far_cohort(server, SHOWN)
    still = segment(server, far_cohort(server, SHOWN).rule_text, "still")
    moved = segment(server, watched.rule_text, "moved")
    for name in (still, moved):
        assert released(server, analyst, SIZE, s=name)["total"]["value"] is not None
    for n in range(RELEASES):
        ask(server, analyst, REACH, s=still, t=[TRAVEL, TOPICS[n % len(TOPICS)]], min=0.05 * (1 + n // 6))
    record_consent(server, watched.people[0], "PROFILING", granted=False)
    outcomes = {name: _codes(ask(server, analyst, SIZE, s=name)) for name in (still, moved)}
    assert outcomes[still] == outcomes[moved], outcomes


def test_a_population_of_exactly_k_minus_one_person_does_not_tell_whether_that_person_is_there(
    marketing_server: LiveServer,
) -> None:
    """A cohort of exactly k; each rule excludes whoever bought on one day (one member on half the
    days). On true values alone, k - 1 is always suppressed and k always shown: right 8 times in 8.
    The noisy threshold (k + 3 scales) shows a count of k about 2.5 % of the time and one of k - 1
    never, so suppression is no guide."""
    server = marketing_server
    marketer = server.issue_key(Role.MARKETER)
    group = far_cohort(server, K)
    bought = [far_day() for _ in range(4)]
    nobody = [far_day() for _ in range(4)]
    send(
        server,
        server.issue_key(Role.ADMIN),
        [page_view(p.email, d, type="purchase") for p, d in zip(group.people, bought, strict=False)],
    )
    # The attacker reads everything the preview says: which figures are hidden and why, in the
    # size and in every breakdown. Told apart by any of it, the two kinds of day would give
    # different patterns; the best guess from the patterns is right for each pattern's majority.
    patterns: dict[str, list[bool]] = {}
    for day in bought + nobody:
        rule = f'{group.rule_text} and events("purchase") = 0 from {day} to {day}'
        preview = call(server, marketer, PREVIEW, ruleText=rule)["previewSegment"]["preview"]
        figures = [preview["size"], *(c["count"] for b in preview["breakdowns"] for c in b["cells"])]
        pattern = json.dumps([(figure["value"] is None, figure["suppressed"]) for figure in figures])
        patterns.setdefault(pattern, []).append(day in bought)
    right = sum(max(kinds.count(True), kinds.count(False)) for kinds in patterns.values())
    assert right / 8 < 0.85, patterns
