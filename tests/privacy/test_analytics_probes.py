"""An analyst (and a marketer, and a reader of the published rows) attack the aggregates of issue #16.

Every probe runs over HTTP against a real server (k at its floor, 10; ``tests.segments.conftest``)
with real keys, both backends; people are made by real ingestion. The promises probed are those of
docs/analytics.md and docs/bi-sql.md:

- two answers whose populations differ by fewer than k people tell nothing about those people:
  overlaps chosen to isolate one person, a total minus its visible cells across aggregates, one
  count asked inside many questions (averaged), thresholds on both sides of a score, trends of
  different lengths, the same question over the WebSocket transport, by a marketer, over SQL;
- a person who withdraws, is restricted or is erased leaves every aggregate at the next question;
- no count below k is ever shown;
- refusals do not tell one truth from another, and nothing sent comes back in an error.

Statistical probes state their bounds in their docstrings: far from both chance and the success
rate exact answers give, so that they neither flake nor let a real leak through.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from server.analytics.bi_export import export_published
from server.analytics.publish import publish
from server.auth.principal import Role
from server.segments.catalogue import FEATURES
from server.storage.tables import BiAggregateRow
from tests.partners.visitors import RUNNING, carry_out, record_consent, send
from tests.privacy.analytics_probing import (
    DISTRIBUTION,
    MEMBER_COUNT,
    MIX,
    MIX_BY,
    MIX_DIMENSIONS,
    NOBODY,
    OVERLAP,
    REACH,
    SIZE,
    TREND,
    Questions,
    ask,
    cells,
    declare,
    far_cohort,
    far_day,
    figures,
    midpoint,
    pattern,
    publisher,
    released,
    segment,
)
from tests.segments.conftest import marketing_server
from tests.segments.marketing import SHOWN, K, call, page_view
from tests.support.live_server import LiveServer
from tests.support.websocket import transport_socket

__all__ = ["marketing_server"]

TRIALS = 16
"""Days where one member of the cohort bought, and as many where nobody did."""
BOUND = 0.85
"""The attacker's success rate must stay below this: exact answers give 1.0, chance 0.5, and the
noise (scale 5, standard deviation about 7 on each value, against a difference of one person)
lets through about 0.55; 28 right out of 32 at a true rate of 0.55 has odds below one in 10^5."""
TRAVEL, COOKING = "travel", "food-and-drink/cooking"


def _right(scores: dict[Any, float], bought: list[Any]) -> float:
    """The attacker's best guess, the larger scores mean a buyer, scored against the truth."""
    guessed = set(sorted(scores, key=lambda day: scores[day], reverse=True)[: len(bought)])
    everyone = set(scores)
    return (len(guessed & set(bought)) + len((everyone - set(bought)) - guessed)) / len(everyone)


def test_overlaps_chosen_to_isolate_one_person_do_not_tell_whether_that_person_is_there(
    marketing_server: LiveServer,
) -> None:
    """Segment A is a cohort; B_d is A minus whoever bought on day d; on half the days one member
    bought, on the others nobody did. The analyst asks everything that can tell |A| - |B_d| (1 or 0):
    B_d's size, the overlap of A and B_d by both methods (its "A only" cell is the person), and the
    overlaps of A and of B_d with an unrelated segment Z (their totals are |A| + |Z| and
    |B_d| + |Z|; an estimate's bounds centre on something). Each way of subtracting, and all of
    them summed, must stay near a coin toss (``BOUND``); and so must the best guess from which
    cells are hidden and why (each pattern taken as the kind of day it came with most often)."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    group = far_cohort(server, SHOWN + 30)
    unrelated = far_cohort(server, SHOWN)
    bought = [far_day() for _ in range(TRIALS)]
    nobody = [far_day() for _ in range(TRIALS)]
    purchases = [page_view(p.email, day, type="purchase") for p, day in zip(group.people, bought, strict=False)]
    send(server, server.issue_key(Role.ADMIN), purchases)
    a = segment(server, group.rule_text, "a")
    z = segment(server, unrelated.rule_text, "z")
    size_a = released(server, analyst, SIZE, s=a)["total"]["value"]
    a_z = {m: released(server, analyst, OVERLAP, ss=[a, z], m=m) for m in ("EXACT", "ESTIMATE")}

    guesses: dict[str, dict[Any, float]] = {"size": {}, "exact": {}, "estimate": {}, "bounds": {}}
    patterns: dict[str, list[bool]] = {}
    for day in bought + nobody:
        b = segment(server, f'{group.rule_text} and events("purchase") = 0 from {day} to {day}', "b")
        guesses["size"][day] = size_a - released(server, analyst, SIZE, s=b)["total"]["value"]
        for method in ("EXACT", "ESTIMATE"):
            isolating = released(server, analyst, OVERLAP, ss=[a, b], m=method)
            only = cells(isolating)[f"{a} only"]  # "a-..." sorts before "b-..."
            assert only == {"value": None, "suppressed": "below_k", "low": None, "high": None}, isolating
            shape = json.dumps([method, sorted(pattern(isolating).values(), key=str)])
            patterns.setdefault(shape, []).append(day in bought)
            b_z = released(server, analyst, OVERLAP, ss=[b, z], m=method)
            key = method.lower()
            guesses[key][day] = a_z[method]["total"]["value"] - b_z["total"]["value"]
            if method == "ESTIMATE":
                guesses["bounds"][day] = midpoint(a_z[method]["total"]) - midpoint(b_z["total"])
    told = sum(max(kinds.count(True), kinds.count(False)) for kinds in patterns.values())
    assert told / (4 * TRIALS) < BOUND, f"the hidden cells tell who is there: {patterns}"
    combined = {day: sum(guess[day] for guess in guesses.values()) for day in bought + nobody}
    for name, scores in {**guesses, "all": combined}.items():
        assert _right(scores, bought) < BOUND, (name, scores)


def test_one_count_is_one_number_whatever_question_carries_it(marketing_server: LiveServer) -> None:
    """Averaging: a segment's size is the total of its every histogram, mix and reach, and the last
    day of its every trend; a topic's reach is the same count inside any set of topics and at any
    threshold that snaps to the same step. Were each of these a fresh draw of noise, a few hundred
    of them (one per feature, per topic set, per mix) would average the noise away; they must all
    be the very same number, for an analyst, for a marketer's member count, over the WebSocket
    transport and in the published rows."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    travellers = far_cohort(server, SHOWN, topics=[TRAVEL])
    # Runners are not reached in travel: the reach (70) and its complement (100) are both shown. (A
    # complement of 70 is the noisy size minus the noisy reach: hidden under one keyring in 3,000.)
    runners = far_cohort(server, SHOWN + 30, topics=[RUNNING])
    yesterday = datetime.now(UTC).date() - timedelta(days=1)  # a travel score above 0.1 however old the day
    send(
        server,
        server.issue_key(Role.ADMIN),
        [page_view(p.email, yesterday, topics=[TRAVEL]) for p in travellers.people],
    )
    name = segment(server, f"({travellers.rule_text}) or ({runners.rule_text})")
    size = released(server, analyst, SIZE, s=name)["total"]
    assert size["value"] is not None

    totals: dict[str, Any] = {}
    for label, document, variables in Questions(name, name, (TRAVEL,)).all(trend_days=(1, 7, 30)):
        if document is OVERLAP:
            continue
        answer = released(server, analyst, document, **variables)
        totals[label] = answer["total"]
        if document is TREND:
            totals[f"{label} last day"] = answer["cells"][-1]["count"]
    reach = {}
    for topics in ([TRAVEL], [TRAVEL, RUNNING], [RUNNING, TRAVEL, COOKING], [TRAVEL, COOKING]):
        for score in (0.1, 0.12, 0.149):
            answer = released(server, analyst, REACH, t=topics, min=score, s=name)
            totals[f"reach {topics} {score}"] = answer["total"]
            reach[f"{topics} {score}"] = cells(answer)[TRAVEL]
    assert {label: total for label, total in totals.items() if total != size} == {}, size
    first = next(iter(reach.values()))
    assert first["value"] is not None, "a shown reach, or the comparison below compares nothing"
    assert {label: cell for label, cell in reach.items() if cell != first} == {}, first

    marketer = server.issue_key(Role.MARKETER)
    counted = call(server, marketer, MEMBER_COUNT, n=name)["segment"]["memberCount"]
    assert (counted["value"], counted["suppressed"]) == (size["value"], size["suppressed"])
    with transport_socket(server, analyst) as socket:
        over_ws = socket.run(SIZE, variables={"s": name})
    assert over_ws.all_errors == [], over_ws.all_errors
    assert over_ws.data[0]["a"]["aggregate"]["total"] == size
    with publisher(server) as runtime:
        publish(runtime)
    with server.runtime.sessions() as session:
        published = session.scalars(
            select(BiAggregateRow.value).where(
                BiAggregateRow.aggregate == "segment_size", BiAggregateRow.subject_label == name
            )
        ).all()
    assert published == [size["value"]]


def test_a_published_breakdown_is_the_analysts_histogram_and_a_total_minus_cells_gains_nothing(
    marketing_server: LiveServer, tmp_path: Path
) -> None:
    """The published breakdown of a segment (SQL rows, Parquet) and ``featureDistribution`` of it
    are one question: the same numbers. And subtracting across aggregates (the size minus the
    shown cells of each of the four breakdowns, in SQL or GraphQL) leaves the hidden cells hidden:
    an exact admin answer shows what they hold together, never fewer than k."""
    server = marketing_server
    analyst, admin = server.issue_key(Role.ANALYST), server.issue_key(Role.ADMIN)
    group = far_cohort(server, SHOWN + 7)
    regions = ["FR"] * (SHOWN - 20) + ["IT"] * (K - 3) + ["DE"] * 1  # IT and DE below k: "other"
    declare(server, [{"email": p.email, "region": r} for p, r in zip(group.people, regions, strict=False)])
    name = segment(server, group.rule_text)
    with publisher(server) as runtime:
        publish(runtime)
        export_published(runtime, tmp_path)
    parquet = pl.read_parquet(tmp_path / "segment_breakdowns.parquet").filter(pl.col("segment") == name)
    for dimension in ("lifecycle", "value_tier", "age_band", "region"):
        graphql = cells(released(server, analyst, DISTRIBUTION, f=dimension, s=name))
        rows = parquet.filter(pl.col("dimension") == dimension)
        published = {row["cell"]: (row["members"], row["suppressed"]) for row in rows.iter_rows(named=True)}
        assert published == {key: (c["value"], c["suppressed"]) for key, c in graphql.items()}, dimension
        exact = released(server, admin, DISTRIBUTION, f=dimension, s=name, x=True)
        hidden = exact["total"]["value"] - sum(c["value"] or 0 for c in cells(exact).values())
        assert (hidden == 0 and all(c["value"] is not None for c in cells(exact).values())) or hidden >= K, exact
    assert not {"IT", "DE"} & set(published), "a region of fewer than k is never named"


def test_interest_thresholds_either_side_of_one_persons_score_are_one_question(marketing_server: LiveServer) -> None:
    """Scores are continuous; thresholds are snapped to steps of 0.05, so any two thresholds in one
    step (one person's score between them, say) get the very same answer and cost one release."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    name = segment(server, far_cohort(server, SHOWN, topics=[TRAVEL]).rule_text)
    answers = [released(server, analyst, REACH, t=[TRAVEL], min=score, s=name) for score in (0.1, 0.1001, 0.13, 0.1499)]
    assert all(
        (answer["total"], answer["cells"]) == (answers[0]["total"], answers[0]["cells"]) for answer in answers
    ), answers
    assert len({answer["releasesLeft"] for answer in answers}) == 1, "one release for all four"


def test_a_day_has_one_number_in_trends_of_every_length(marketing_server: LiveServer) -> None:
    """Trends of 1 to 40 days share their days: each day is one number however many trends show it,
    and the last day is the segment's size."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    name = segment(server, far_cohort(server, SHOWN).rule_text)
    size = released(server, analyst, SIZE, s=name)["total"]
    seen: dict[str, dict[str, Any]] = {}
    for days in (1, 2, 3, 7, 14, 40):
        for cell in released(server, analyst, TREND, s=name, days=days)["cells"]:
            assert seen.setdefault(cell["key"], cell["count"]) == cell["count"], (days, cell)
    assert seen[max(seen)] == size


def _everything_exactly(server: LiveServer, admin: str, a: str, y: str) -> dict[str, dict[str, Any]]:
    """Every aggregate about segment ``a`` (and its overlap with ``y``) as an admin's exact answer."""
    answers = {
        "size": released(server, admin, SIZE, s=a, x=True),
        "trend": released(server, admin, TREND, s=a, days=3, x=True),
        "distribution": released(server, admin, DISTRIBUTION, f="events_lifetime", s=a, x=True),
        "reach": released(server, admin, REACH, t=[TRAVEL], min=0.05, s=a, x=True),
    }
    for method in ("EXACT", "ESTIMATE"):
        answers[f"overlap {method}"] = released(server, admin, OVERLAP, ss=[a, y], m=method, x=True)
    for dimension in MIX_DIMENSIONS:
        for by in MIX_BY:
            answers[f"mix {dimension} {by}"] = released(server, admin, MIX, d=dimension, by=by, s=a, x=True)
    return {label: figures(answer) for label, answer in answers.items()}


@pytest.mark.parametrize("leaving", ["withdrawal", "restriction", "erasure"])
def test_a_person_who_may_no_longer_be_counted_leaves_every_aggregate_at_the_next_question(
    marketing_server: LiveServer, leaving: str
) -> None:
    """Two cohorts: one of K+5 people with one page view (running), one of K+8 with three (travel), the
    person among them. Segment A holds both cohorts, Y the second. Right after the person withdraws,
    is restricted or is erased (no evaluation between), every exact figure that counted them is one
    less: A's size and the last day of its trend, the overlap's total and its "A&Y" cell by both
    methods, the histogram's total and its [3, 5) bin, the reach of travel, every mix's total."""
    server = marketing_server
    admin = server.issue_key(Role.ADMIN)
    twice = far_day()
    runners = far_cohort(server, K + 5, topics=[RUNNING])
    travellers = far_cohort(server, K + 8, topics=[TRAVEL])
    send(server, admin, [page_view(p.email, twice, topics=[TRAVEL]) for p in travellers.people])
    # and a third yesterday (no cohort's day): a travel score well above 0.05 however old the others are
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    send(server, admin, [page_view(p.email, yesterday, topics=[TRAVEL]) for p in travellers.people])
    a = segment(server, f"({runners.rule_text}) or ({travellers.rule_text})", "a")
    y = segment(server, f'events("page_view") >= 1 from {twice} to {twice}', "y")
    before = _everything_exactly(server, admin, a, y)
    person = travellers.people[0]
    if leaving == "withdrawal":
        record_consent(server, person, "PROFILING", granted=False)
    else:
        carry_out(server, leaving.upper(), person)
    after = _everything_exactly(server, admin, a, y)

    counted_in = {
        "size": ["__total__"],
        "trend": ["__total__", max(day for day in before["trend"] if day != "__total__")],
        "distribution": ["__total__", "[3, 5)"],
        "reach": ["__total__", TRAVEL],
        "overlap EXACT": ["__total__", f"{min(a, y)}&{max(a, y)}"],
        "overlap ESTIMATE": ["__total__", f"{min(a, y)}&{max(a, y)}"],
        **{f"mix {d} {b}": ["__total__"] for d in MIX_DIMENSIONS for b in MIX_BY},
    }
    for label, names in counted_in.items():
        for figure in names:
            assert before[label][figure]["value"] is not None, (label, figure, before[label])
            assert after[label][figure]["value"] == before[label][figure]["value"] - 1, (label, figure, after[label])


def test_the_published_rows_leave_the_person_out_at_the_next_publish(
    marketing_server: LiveServer, tmp_path: Path
) -> None:
    """SQL rows and Parquet: published again after an erasure, the segment's size is the number an
    analyst is given now (the same question over the same truth gets the same noise), taken from a
    population without the person (an admin's exact size)."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    group = far_cohort(server, SHOWN + 1)
    name = segment(server, group.rule_text)
    carry_out(server, "ERASURE", group.people[0])
    with publisher(server) as runtime:
        publish(runtime)
        export_published(runtime, tmp_path)
    now = released(server, analyst, SIZE, s=name)["total"]["value"]
    exact = released(server, server.issue_key(Role.ADMIN), SIZE, s=name, x=True)["total"]["value"]
    assert exact == SHOWN
    sizes = pl.read_parquet(tmp_path / "segment_sizes.parquet").filter(pl.col("segment") == name)
    assert sizes["members"].to_list() == [now]


def _emails_and_ids_absent(text: str, emails: list[str]) -> None:
    """No email of the people counted, and no number as large as a subject id (random 63-bit ints;
    every count here is a few dozen)."""
    assert not [email for email in emails if email in text]
    assert not [number for number in re.findall(r"\d{10,}", text)], text


def test_no_count_below_k_is_ever_shown_and_no_one_is_named(marketing_server: LiveServer) -> None:
    """A population of many small cells (regions of 1 to 12 people, age bands, three topics, small
    and empty segments), swept through every aggregate, noisy and exact: every shown count is at
    least k; in an exact answer whose cells split the total, the hidden cells hold none or at least
    k together; and no email, subject or member list appears anywhere."""
    server = marketing_server
    analyst, admin = server.issue_key(Role.ANALYST), server.issue_key(Role.ADMIN)
    group = far_cohort(server, 3 * K + 7, topics=[TRAVEL])
    records = [
        {"email": p.email, "region": f"FR{n % 9}" if n % 4 else "IT", "birthYear": 1950 + (n * 7) % 55}
        for n, p in enumerate(group.people)
    ]
    declare(server, records)
    big = segment(server, group.rule_text, "big")
    small = segment(server, far_cohort(server, K - 3).rule_text, "small")
    empty = segment(server, NOBODY, "empty")
    emails = [p.email for p in group.people]
    sweeps = [Questions(big, small, (TRAVEL, RUNNING, COOKING)), Questions(small, empty, (TRAVEL,))]
    asked = [question for sweep in sweeps for question in sweep.all(trend_days=(1, 5))]
    asked += [(f"everyone {f}", DISTRIBUTION, {"f": f}) for f in sorted(FEATURES)]
    for label, document, variables in asked:
        for token, exact in ((analyst, False), (admin, True)):
            response = server.graphql(document, token=token, variables={**variables, "x": exact})
            _emails_and_ids_absent(response.text, emails)
            answer = response.json()["data"]["a"]
            assert answer["errors"] == [], (label, answer)
            aggregate = answer["aggregate"]
            shown = {name: f["value"] for name, f in figures(aggregate).items() if f["value"] is not None}
            assert all(value >= (K if exact else K + 15) for value in shown.values()), (label, exact, shown)
            splits = not (document is TREND or document is REACH)
            if exact and splits and aggregate["total"]["value"] is not None:
                hidden = aggregate["total"]["value"] - sum(v for n, v in shown.items() if n != "__total__")
                nothing_hidden = all(c["count"]["value"] is not None for c in aggregate["cells"])
                assert (hidden == 0 and nothing_hidden) or hidden >= K, (label, aggregate)
            if exact and document is REACH and aggregate["total"]["value"] is not None:
                for name, value in shown.items():
                    left = aggregate["total"]["value"] - value
                    assert name == "__total__" or left >= K, (label, "everyone but a few reached", aggregate)
    listed = call(server, analyst, "{ analyticsSegments { name description } }")
    _emails_and_ids_absent(json.dumps(listed), emails)


SECRET = "ana.lopez@example.org"


def test_refusals_tell_no_truth_and_echo_nothing(marketing_server: LiveServer) -> None:
    """A segment of nobody and a segment of K-1 answer every question alike (every figure hidden,
    for the same reasons); an unknown segment is refused without its name, as is anything sent
    (a feature, a topic, an overlap's segments); an analyst asking for exact figures is refused
    alike whatever the segment holds."""
    server = marketing_server
    analyst = server.issue_key(Role.ANALYST)
    nobody = segment(server, NOBODY, "nobody")
    few = segment(server, far_cohort(server, K - 1, topics=[TRAVEL]).rule_text, "few")
    other = segment(server, NOBODY, "other")  # nobody

    def shape(name: str) -> list[Any]:
        shapes: list[Any] = []
        for label, document, variables in Questions(name, other, (TRAVEL,)).all(trend_days=(3,)):
            answer = released(server, analyst, document, **variables)
            named = {key.replace(name, "S"): figure for key, figure in pattern(answer).items()}
            shapes.append((label, answer["method"], named))
            exact = ask(server, analyst, document, **variables, x=True)
            shapes.append((label, exact["aggregate"], [(e["field"], e["code"], e["message"]) for e in exact["errors"]]))
        return shapes

    assert shape(nobody) == shape(few)

    for document, variables in (
        (SIZE, {"s": SECRET}),
        (TREND, {"s": SECRET, "days": 3}),
        (OVERLAP, {"ss": [few, SECRET], "m": "EXACT"}),
        (OVERLAP, {"ss": [SECRET, few], "m": "ESTIMATE"}),
        (DISTRIBUTION, {"f": SECRET}),
        (DISTRIBUTION, {"f": "lifecycle", "s": SECRET}),
        (REACH, {"t": [SECRET], "min": 0.5}),
        (REACH, {"t": [TRAVEL], "min": 0.5, "s": SECRET}),
        (MIX, {"d": "LIFECYCLE", "by": "REGION", "s": SECRET}),
    ):
        response = server.graphql(document, token=analyst, variables=variables)
        assert "ana.lopez" not in response.text, response.text
        assert response.json()["data"]["a"]["aggregate"] is None
