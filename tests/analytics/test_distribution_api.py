"""Distributions over HTTP, as an analyst's BI tool asks them, on a live server with k = 10 (both
backends): a cohort's segment shows its histogram, quantiles, reach and mix; a marketer or a
partner is refused; an unknown segment is refused without its name coming back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from server.auth.principal import Role
from tests.partners.visitors import send
from tests.segments.conftest import marketing_server  # noqa: F401  (the live server with k = 10)
from tests.segments.marketing import SHOWN, Cohort, K, call, cohort, created, eventually, page_view, unique
from tests.support.live_server import LiveServer

AGGREGATE = "method total { value suppressed } cells { key count { value suppressed } } releasesLeft"
DISTRIBUTION = f"""
query($feature: String!, $segment: String) {{
  featureDistribution(feature: $feature, segment: $segment) {{
    aggregate {{ {AGGREGATE} }} errors {{ field code message }}
  }}
}}"""
QUANTILES = f"""
query($feature: String!, $segment: String, $quantiles: [Float!]!) {{
  featureQuantiles(feature: $feature, segment: $segment, quantiles: $quantiles) {{
    histogram {{ {AGGREGATE} }} quantiles {{ q value unavailable }} errors {{ field code message }}
  }}
}}"""
REACH = f"""
query($topics: [String!]!, $minScore: Float!, $segment: String) {{
  interestReach(topics: $topics, minScore: $minScore, segment: $segment) {{
    aggregate {{ {AGGREGATE} }} errors {{ field code message }}
  }}
}}"""
MIX = f"""
query($segment: String) {{
  profileMix(dimension: LIFECYCLE, by: AGE_BAND, segment: $segment) {{ aggregate {{ {AGGREGATE} }} errors {{ code }} }}
}}"""
TRAVEL = "travel"


def segment_of(server: LiveServer, people: Cohort) -> str:
    """A segment of the cohort, once the worker has evaluated it."""
    marketer = server.issue_key(Role.MARKETER)
    name = unique("dist")
    created(server, marketer, name, ruleText=people.rule_text)
    query = "query($name: String!) { segment(name: $name) { health { status } } }"
    eventually(
        lambda: call(server, marketer, query, name=name)["segment"]["health"]["status"],
        lambda status: status == "ready",
    )
    return name


def cells(aggregate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cell["key"]: cell["count"] for cell in aggregate["cells"]}


def test_an_analyst_sees_a_segments_distributions_released(marketing_server: LiveServer) -> None:  # noqa: F811
    server = marketing_server
    people = cohort(server, SHOWN, topics=[TRAVEL])
    # A second view yesterday (no cohort's day): the cohort's own day recedes as the session makes
    # more cohorts, and a single view a month old no longer scores 0.1 in travel.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    send(server, server.issue_key(Role.ADMIN), [page_view(p.email, yesterday, topics=[TRAVEL]) for p in people.people])
    name = segment_of(server, people)
    analyst = server.issue_key(Role.ANALYST)

    histogram = call(server, analyst, DISTRIBUTION, feature="events_lifetime", segment=name)["featureDistribution"]
    assert histogram["errors"] == []
    released = histogram["aggregate"]
    assert released["method"] == "NOISY"
    assert released["total"]["value"] >= K + 15, "shown from the noisy threshold up"
    # Each viewed two pages: a bin holding everyone, shown beside the empty ones, would say so of
    # each. Decided on noisy values it is hidden unless the noisy total minus it leaves at least the
    # threshold elsewhere (about one time in 80), which then says the opposite of the truth.
    everyone = cells(released)["[2, 3)"]
    assert everyone == {"value": None, "suppressed": "below_k"} or (
        released["total"]["value"] - everyone["value"] >= K + 15
    ), released
    assert cells(released)["[0, 1)"] == {"value": None, "suppressed": "below_k"}

    asked = call(server, analyst, QUANTILES, feature="events_lifetime", segment=name, quantiles=[0.5])
    quantiles = asked["featureQuantiles"]
    assert quantiles["errors"] == []
    assert quantiles["histogram"]["cells"] == released["cells"]
    median = quantiles["quantiles"][0]
    if everyone["value"] is None:
        assert median["value"] is None, "no bin shown to read it in"
    else:  # shown (see above), the bin gives the median when it holds half the noisy total
        assert median["value"] is None or 2 <= median["value"] <= 3, quantiles

    reached = call(server, analyst, REACH, topics=[TRAVEL], minScore=0.1, segment=name)["interestReach"]
    assert reached["errors"] == []
    # Everyone in the segment is reached: "all but none" is not shown, as "all but a few" is not.
    # Decided on noisy values like the bin above: shown only when the noisy size minus it leaves at
    # least the threshold unreached (about one time in 80), which then says the opposite of the truth.
    travel = cells(reached["aggregate"])[TRAVEL]
    assert travel == {"value": None, "suppressed": "below_k"} or (
        reached["aggregate"]["total"]["value"] - travel["value"] >= K + 15
    ), reached
    again = call(server, analyst, REACH, topics=[TRAVEL], minScore=0.14, segment=name)["interestReach"]
    assert again["aggregate"]["cells"] == reached["aggregate"]["cells"]  # 0.14 snaps to 0.10

    mix = call(server, analyst, MIX, segment=name)["profileMix"]
    assert mix["errors"] == []
    assert len(mix["aggregate"]["cells"]) == (4 + 1) * (7 + 1)


def test_refusals_name_the_field_and_never_the_value(marketing_server: LiveServer) -> None:  # noqa: F811
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    secret = "ana.lopez@example.org"
    for document, variables, field, code in (
        (DISTRIBUTION, {"feature": "lifecycle", "segment": secret}, "segment", "UNKNOWN_SEGMENT"),
        (DISTRIBUTION, {"feature": secret}, "feature", "UNKNOWN_FEATURE"),
        (REACH, {"topics": [secret], "minScore": 0.5}, "topics", "UNKNOWN_TOPIC"),
        (REACH, {"topics": ["healthy-living/weight-loss"], "minScore": 0.5}, "topics", "SENSITIVE_TOPIC"),
    ):
        response = server.graphql(document, token=analyst, variables=variables)
        payload = next(iter(response.json()["data"].values()))
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
        assert secret not in response.text


def test_marketers_and_partners_are_forbidden(marketing_server: LiveServer) -> None:  # noqa: F811
    server = marketing_server
    for role in (Role.MARKETER, Role.PARTNER):
        body = server.graphql(DISTRIBUTION, token=server.issue_key(role), variables={"feature": "lifecycle"}).json()
        assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]
        assert body["data"] is None
