"""Differential privacy switched on, over HTTP: each new answer spends ε from the key's budget and
says so, a repeat is answered from the ledger at no cost, and past the budget the answer is
refused with a clear code before any noise is drawn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from privacy.keyring import Keyring
from server.auth.principal import Role
from tests.partners.seed import segment
from tests.segments.marketing import call
from tests.support.live_server import LiveServer
from tests.support.servers_with import server_with

EPSILON_PER_PERIOD, EPSILON_PER_ANSWER = 1.0, 0.25
SIZE = """query($s: String!) { segmentSize(segment: $s) {
  aggregate { method noiseScale epsilonSpent epsilonLeft releasesLeft total { value suppressed } }
  errors { code message } } }"""
COST = """{ size: analyticsCost(kind: SIZE) { epsilon noiseScale affordable shownFrom }
  trend: analyticsCost(kind: TREND, days: 7) { epsilon noiseScale affordable shownFrom } }"""
BUDGET = "{ analyticsBudget { differentialPrivacy epsilonPerAnswer epsilonSpent epsilonLeft noiseScale } }"


@pytest.fixture(scope="module")
def private_server(
    request: pytest.FixtureRequest, server_backend: str, tmp_path_factory: pytest.TempPathFactory, keyring: Keyring
) -> Iterator[LiveServer]:
    with server_with(
        request,
        server_backend,
        tmp_path_factory,
        keyring,
        "dp",
        dp_epsilon_per_period=str(EPSILON_PER_PERIOD),
        dp_epsilon_per_answer=str(EPSILON_PER_ANSWER),
        analytics_period_days="366",  # no UTC midnight gives the key its ε back mid-test
    ) as server:
        yield server


def _size(server: LiveServer, token: str, name: str) -> dict[str, Any]:
    return dict(call(server, token, SIZE, s=name)["segmentSize"])


def test_each_new_answer_spends_epsilon_a_repeat_is_free_and_an_empty_budget_refuses(
    private_server: LiveServer,
) -> None:
    server = private_server
    analyst = server.issue_key(Role.ANALYST)
    names = [segment(server.runtime)[1] for _ in range(5)]
    before = call(server, analyst, BUDGET)["analyticsBudget"]
    assert before == {
        "differentialPrivacy": True,
        "epsilonPerAnswer": EPSILON_PER_ANSWER,
        "epsilonSpent": 0.0,
        "epsilonLeft": EPSILON_PER_PERIOD,
        "noiseScale": None,
    }

    costs = call(server, analyst, COST)
    # k is 50 here; a count shows from k plus 3 noise scales of the answer's own scale
    assert costs["size"] == {"epsilon": EPSILON_PER_ANSWER, "noiseScale": 4.0, "affordable": True, "shownFrom": 62}
    assert costs["trend"]["noiseScale"] == pytest.approx(8 / EPSILON_PER_ANSWER), "7 days and today's total"
    assert costs["trend"]["shownFrom"] == 50 + 96
    assert call(server, analyst, BUDGET)["analyticsBudget"]["epsilonSpent"] == 0.0, "asking the cost costs nothing"

    first = _size(server, analyst, names[0])["aggregate"]
    assert first["method"] == "NOISY"
    assert first["noiseScale"] == pytest.approx(1 / EPSILON_PER_ANSWER)
    assert (first["epsilonSpent"], first["epsilonLeft"]) == (pytest.approx(0.25), pytest.approx(0.75))
    assert first["total"] == {"value": None, "suppressed": "below_k"}, "an empty segment is still below k"
    again = _size(server, analyst, names[0])["aggregate"]
    assert (again["epsilonSpent"], again["epsilonLeft"]) == (0.0, pytest.approx(0.75)), "a repeat costs nothing"

    for name in names[1:4]:
        assert _size(server, analyst, name)["errors"] == []
    refused = _size(server, analyst, names[4])
    assert refused["aggregate"] is None
    assert [e["code"] for e in refused["errors"]] == ["BUDGET_EXHAUSTED"]
    assert call(server, analyst, BUDGET)["analyticsBudget"]["epsilonLeft"] == pytest.approx(0.0)
    assert call(server, analyst, COST)["size"]["affordable"] is False
    again_when_spent = _size(server, analyst, names[0])
    assert [e["code"] for e in again_when_spent["errors"]] == ["BUDGET_EXHAUSTED"], "repeats too, once spent"
    other = server.issue_key(Role.ANALYST)
    assert _size(server, other, names[4])["errors"] == [], "the budget is per key"
