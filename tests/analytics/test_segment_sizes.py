"""Segment sizes and trends as analysts ask for them over HTTP: noisy by default, exact for admins,
and a person who withdraws, is restricted or is erased leaves every count at the next question."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.auth.principal import Role
from tests.partners.visitors import carry_out, record_consent
from tests.segments.conftest import marketing_server
from tests.segments.marketing import SHOWN, K, call, cohort, created, exact_size, unique
from tests.support.live_server import LiveServer

__all__ = ["marketing_server"]

AGGREGATE = (
    "aggregate { method noiseScale shownFrom asOf releasesLeft total { value suppressed } "
    "cells { key count { value suppressed } } }"
)
SIZE = (
    "query($s: String!, $exact: Boolean!) { segmentSize(segment: $s, exact: $exact) { "
    f"{AGGREGATE} errors {{ field code message }} }} }}"
)
TREND = (
    "query($s: String!, $days: Int!) { segmentSizeTrend(segment: $s, days: $days) { "
    f"{AGGREGATE} errors {{ field code }} }} }}"
)


def _size(server: LiveServer, token: str, segment: str, *, exact: bool = False) -> dict[str, Any]:
    return dict(call(server, token, SIZE, s=segment, exact=exact)["segmentSize"])


def _segment_of(server: LiveServer, size: int) -> tuple[str, list[Any]]:
    group = cohort(server, size)
    name = created(server, server.issue_key(Role.MARKETER), unique("sized"), ruleText=group.rule_text)["name"]
    return name, group.people


def test_an_analyst_gets_a_noisy_size_an_admin_may_ask_for_the_exact_one(marketing_server: LiveServer) -> None:
    server = marketing_server
    name, _ = _segment_of(server, SHOWN)
    analyst = server.issue_key(Role.ANALYST)

    noisy = _size(server, analyst, name)
    assert noisy["errors"] == []
    aggregate = noisy["aggregate"]
    assert (aggregate["method"], aggregate["noiseScale"], aggregate["shownFrom"]) == ("NOISY", 5.0, K + 15)
    assert aggregate["total"]["suppressed"] is None
    assert aggregate["total"]["value"] >= K
    again = _size(server, analyst, name)["aggregate"]
    assert (again["total"], again["releasesLeft"]) == (aggregate["total"], aggregate["releasesLeft"]), "a free repeat"
    assert exact_size(server, name) == SHOWN
    exact = _size(server, server.issue_key(Role.ADMIN), name, exact=True)["aggregate"]
    assert (exact["method"], exact["noiseScale"], exact["shownFrom"]) == ("EXACT", None, K), "the floor alone"

    refused = _size(server, analyst, name, exact=True)
    assert refused["aggregate"] is None
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("exact", "EXACT_NOT_PERMITTED")]
    unknown = _size(server, analyst, "no-such-segment")
    assert [(e["field"], e["code"]) for e in unknown["errors"]] == [("segment", "UNKNOWN_SEGMENT")]
    assert "no-such-segment" not in str(unknown)


@pytest.mark.parametrize("leaving", ["withdrawal", "restriction", "erasure"])
def test_a_person_who_may_no_longer_be_counted_leaves_the_size_at_the_next_question(
    marketing_server: LiveServer, leaving: str
) -> None:
    server = marketing_server
    name, people = _segment_of(server, K + 3)
    assert exact_size(server, name) == K + 3
    if leaving == "withdrawal":
        record_consent(server, people[0], "PROFILING", granted=False)
    else:
        carry_out(server, leaving.upper(), people[0])
    assert exact_size(server, name) == K + 2, "at once, not at the next evaluation"


def test_a_trend_has_one_count_per_day_each_floored_on_its_own(marketing_server: LiveServer) -> None:
    server = marketing_server
    name, _ = _segment_of(server, SHOWN)
    analyst = server.issue_key(Role.ANALYST)
    trend = call(server, analyst, TREND, s=name, days=3)["segmentSizeTrend"]
    assert trend["errors"] == []
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=offset)).isoformat() for offset in (2, 1, 0)]
    cells = {cell["key"]: cell["count"] for cell in trend["aggregate"]["cells"]}
    assert list(cells) == days
    assert cells[days[0]] == cells[days[1]] == {"value": None, "suppressed": "below_k"}, "nobody was in it then"
    assert cells[days[2]]["value"] >= K
    longer = call(server, analyst, TREND, s=name, days=5)["segmentSizeTrend"]["aggregate"]
    assert {c["key"]: c["count"] for c in longer["cells"][-3:]} == cells, "a day gets the same noise in every trend"
    for days_asked in (0, 367):
        refused = call(server, analyst, TREND, s=name, days=days_asked)["segmentSizeTrend"]
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("days", "BAD_INPUT")]
