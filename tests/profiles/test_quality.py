"""Data quality: ingestion tallies what became of every record per source, day and code, and each
build stores a per-source report (rows, null rates, freshness, daily volumes against their
trailing mean, bot-like subjects) that analysts read over GraphQL, with no subject in it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import select

from server.auth.principal import SYSTEM_ACTOR, Role
from server.ingest.service import check_events, ingest_together
from server.ingest.setup import guardrails_from, validation_context
from server.profiles.build_runs import CutPoints, begin_run, finish_run
from server.profiles.config import ProfileConfig
from server.profiles.quality import REPORT_SCHEMA, quality_report, reports_for, store_report
from server.runtime import Runtime
from server.storage.tables import EventRow, IngestTallyRow
from tests.ingest.batches import NOW, count, event, fixed_clock, frame, ingest
from tests.support.live_server import LiveServer

TODAY = (NOW.date() - date(1970, 1, 1)).days
YESTERDAY = NOW - timedelta(days=1)
PROFILING = ["analytics", "profiling"]


def at(runtime: Runtime, when: datetime) -> Runtime:
    return fixed_clock(runtime, when)


def sent(when: datetime, **fields: Any) -> dict[str, Any]:
    """An event sent a minute before ``when``, as a sender whose clock reads ``when`` would."""
    return event(timestamp=when - timedelta(minutes=1), **fields)


def tallies(runtime: Runtime) -> dict[tuple[str, int, str], int]:
    with runtime.sessions() as session:
        rows = session.execute(
            select(IngestTallyRow.source, IngestTallyRow.day, IngestTallyRow.outcome, IngestTallyRow.count)
        )
        return {(source, day, outcome): n for source, day, outcome, n in rows}


def build(runtime: Runtime, as_of: datetime, config: ProfileConfig | None = None) -> tuple[int, pl.DataFrame]:
    """A build run that stores its report, as the batch build does at its end; the report read
    back must be the one computed."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        run = finish_run(
            unit.session,
            begin_run(unit.session, now=as_of, partitions=1, settings={}).id,
            now=as_of,
            cut_points=CutPoints(high=None, low=None, buyers=0),
        )
        report = quality_report(unit.session, as_of=as_of, config=config or unit.profiles)
        store_report(unit.session, run.id, report)
    with runtime.sessions() as session:
        stored = reports_for(session, run.id)
    assert stored["build_id"].to_list() == [run.id] * report.height
    assert_frame_equal(stored.drop("build_id"), report)
    return run.id, report


def of(report: pl.DataFrame, source: str) -> dict[str, Any]:
    [row] = report.filter(pl.col("source") == source).to_dicts()
    return row


def outcomes(row: Mapping[str, Any], period: str = "total") -> dict[str, int]:
    return {o["outcome"]: o[period] for o in row["outcomes"] if o[period]}


def test_each_outcome_is_tallied_per_source_day_and_code_and_reported(runtime: Runtime) -> None:
    first = [
        sent(YESTERDAY, anonymous_id="d1"),
        sent(YESTERDAY, anonymous_id="d2"),
        sent(YESTERDAY, anonymous_id="d3"),
        sent(YESTERDAY, email="not-an-email"),
        sent(YESTERDAY, event="teleport", anonymous_id="d4"),
        sent(YESTERDAY, event="teleport", anonymous_id="d5"),
    ]
    results = [ingest(at(runtime, YESTERDAY), first, source="web")]
    results.append(ingest(at(runtime, NOW), first, source="web"))  # resent the next day
    login = [sent(NOW, anonymous_id="d1", user_id="cust-1"), sent(NOW, anonymous_id="d2", user_id="cust-1")]
    results.append(ingest(at(runtime, NOW), login, source="web"))
    app = ingest(at(runtime, NOW), [sent(NOW, anonymous_id="d9"), sent(NOW, channel="fax")], source="app")
    assert [(r.accepted, r.duplicates, len(r.rejected), r.new_subjects, r.merges) for r in results] == [
        (3, 0, 3, 3, 0),
        (0, 3, 3, 0, 0),
        (2, 0, 0, 0, 1),
    ]
    assert (app.accepted, app.new_subjects, [r.code for r in app.rejected]) == (1, 1, ["UNKNOWN_CHANNEL"])

    assert tallies(runtime) == {
        ("web", TODAY - 1, "accepted"): 3,
        ("web", TODAY - 1, "new_subject"): 3,
        ("web", TODAY - 1, "rejected:INVALID_EMAIL"): 1,
        ("web", TODAY - 1, "rejected:UNKNOWN_EVENT_TYPE"): 2,
        ("web", TODAY, "duplicate"): 3,
        ("web", TODAY, "rejected:INVALID_EMAIL"): 1,
        ("web", TODAY, "rejected:UNKNOWN_EVENT_TYPE"): 2,
        ("web", TODAY, "accepted"): 2,
        ("web", TODAY, "merge"): 1,
        ("app", TODAY, "accepted"): 1,
        ("app", TODAY, "new_subject"): 1,
        ("app", TODAY, "rejected:UNKNOWN_CHANNEL"): 1,
    }

    _build_id, report = build(runtime, NOW)
    assert report["source"].to_list() == ["app", "web"]
    web = of(report, "web")
    assert web["rows"] == 5 == count(runtime, EventRow, EventRow.source == "web")
    assert outcomes(web) == {
        "accepted": 5,
        "duplicate": 3,
        "merge": 1,
        "new_subject": 3,
        "rejected:INVALID_EMAIL": 2,
        "rejected:UNKNOWN_EVENT_TYPE": 4,
    }
    assert outcomes(web, "last_day") == {
        "accepted": 3,
        "new_subject": 3,
        "rejected:INVALID_EMAIL": 1,
        "rejected:UNKNOWN_EVENT_TYPE": 2,
    }
    assert outcomes(of(report, "app")) == {"accepted": 1, "new_subject": 1, "rejected:UNKNOWN_CHANNEL": 1}
    assert of(report, "app")["rows"] == 1


def test_a_replayed_batch_counts_as_duplicates_and_leaves_accepted_alone(runtime: Runtime) -> None:
    batch = [sent(NOW, anonymous_id=f"dev-{n}") for n in range(4)] + [sent(NOW, event="teleport")]
    ingest(at(runtime, NOW), batch)
    before = tallies(runtime)
    again = ingest(at(runtime, NOW), batch)
    assert (again.accepted, again.duplicates) == (0, 4)
    after = tallies(runtime)
    assert after[("web-test", TODAY, "accepted")] == before[("web-test", TODAY, "accepted")] == 4
    assert after[("web-test", TODAY, "new_subject")] == 4
    assert after[("web-test", TODAY, "duplicate")] == 4
    assert after[("web-test", TODAY, "rejected:UNKNOWN_EVENT_TYPE")] == 2, "a bad record is judged again"
    assert of(build(runtime, NOW)[1], "web-test")["rows"] == 4


def test_batches_stored_together_are_tallied_in_one_pass(runtime: Runtime) -> None:
    """Group commit stores concurrent batches in one pass: each record is tallied once, rejects
    of every batch by their own code."""
    runtime = at(runtime, NOW)
    batches = [
        [sent(NOW, anonymous_id="a"), sent(NOW, email="nope")],
        [sent(NOW, anonymous_id="b"), sent(NOW, event="teleport"), sent(NOW, email="nope")],
    ]
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        context = validation_context(unit.session, runtime.settings, unit.kit, now=unit.clock())
        checked = [check_events(frame(records), context, unit.kit) for records in batches]
        ingest_together(unit, checked, source="web", guardrails=guardrails_from(runtime.settings))
    assert tallies(runtime) == {
        ("web", TODAY, "accepted"): 2,
        ("web", TODAY, "new_subject"): 2,
        ("web", TODAY, "rejected:INVALID_EMAIL"): 2,
        ("web", TODAY, "rejected:UNKNOWN_EVENT_TYPE"): 1,
    }


def test_tallies_roll_back_with_their_batch(runtime: Runtime) -> None:
    runtime = at(runtime, NOW)

    def store_then_crash() -> None:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            context = validation_context(unit.session, runtime.settings, unit.kit, now=unit.clock())
            checked = check_events(frame([sent(NOW, anonymous_id="a")]), context, unit.kit)
            ingest_together(unit, [checked], source="web", guardrails=guardrails_from(runtime.settings))
            raise RuntimeError("crash after the pass, before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        store_then_crash()
    assert tallies(runtime) == {}
    assert count(runtime, EventRow) == 0


def test_null_rates_are_the_exact_share_of_rows_without_each_field(runtime: Runtime) -> None:
    shop = [
        sent(
            NOW,
            anonymous_id="p1",
            event="purchase",
            amount=10.0,
            currency="EUR",
            topics=["automotive"],
            campaign="spring",
            region="FR",
        ),
        sent(NOW, anonymous_id="p2", topics=["automotive"], region="DE"),
        sent(NOW, anonymous_id="p3"),
        sent(NOW, anonymous_id="p4", campaign="spring"),
    ]
    assert ingest(at(runtime, NOW), shop, source="shop").accepted == 4
    ingest(at(runtime, NOW), [sent(NOW, email="nope")], source="broken")
    report = build(runtime, NOW)[1]
    assert of(report, "shop")["null_rates"] == {
        "topics": 0.5,
        "amount": 0.75,
        "currency": 0.75,
        "campaign": 0.5,
        "region": 0.5,
    }
    broken = of(report, "broken")
    assert (broken["rows"], broken["last_occurred_at"], broken["daily"]) == (0, None, [])
    assert broken["null_rates"] == dict.fromkeys(["topics", "amount", "currency", "campaign", "region"])
    assert outcomes(broken) == {"rejected:INVALID_EMAIL": 1}


def test_freshness_is_the_latest_event_and_receipt_per_source_as_of_the_build(runtime: Runtime) -> None:
    early, late = NOW - timedelta(hours=2), NOW - timedelta(minutes=30)
    ingest(
        at(runtime, early),
        [
            event(anonymous_id="a", timestamp=NOW - timedelta(hours=5)),
            event(anonymous_id="b", timestamp=NOW - timedelta(hours=3)),
        ],
        source="web",
    )
    ingest(at(runtime, late), [event(anonymous_id="c", timestamp=NOW - timedelta(hours=1))], source="web")
    ingest(at(runtime, early), [event(anonymous_id="d", timestamp=NOW - timedelta(hours=4))], source="app")

    def freshness(as_of: datetime) -> dict[str, tuple[datetime, datetime]]:
        report = build(runtime, as_of)[1]
        return {r["source"]: (r["last_occurred_at"], r["last_received_at"]) for r in report.to_dicts()}

    assert freshness(NOW) == {
        "web": (NOW - timedelta(hours=1), late),
        "app": (NOW - timedelta(hours=4), early),
    }
    assert freshness(NOW - timedelta(hours=1)) == {  # the later batch was not received yet
        "web": (NOW - timedelta(hours=3), early),
        "app": (NOW - timedelta(hours=4), early),
    }


def daily_traffic(first_day: int, volumes: Mapping[int, int], *, devices: int = 7) -> list[dict[str, Any]]:
    """``volumes``: events per day (days since 1970-01-01), at noon, from a few devices."""
    records = []
    for day, volume in volumes.items():
        noon = datetime(1970, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)
        records += [
            event(anonymous_id=f"dev-{n % devices}", timestamp=noon + timedelta(seconds=n)) for n in range(volume)
        ]
    assert min(volumes) >= first_day
    return records


def test_a_day_far_from_its_trailing_mean_is_flagged_and_a_normal_one_is_not(runtime: Runtime) -> None:
    """Web sends 20 or 21 events a day for a month, goes silent one day, floods another; a source
    that started five days ago has no trailing window yet and is not judged."""
    steady = {day: 20 + day % 2 for day in range(TODAY - 30, TODAY)}
    steady[TODAY - 8] = 0
    steady[TODAY - 3] = 100
    ingest(at(runtime, NOW), daily_traffic(TODAY - 30, steady), source="web")
    ingest(at(runtime, NOW), daily_traffic(TODAY - 5, dict.fromkeys(range(TODAY - 5, TODAY), 50)), source="late")
    report = build(runtime, NOW)[1]

    web = {d["day"]: d for d in of(report, "web")["daily"]}
    days = [date(1970, 1, 1) + timedelta(days=d) for d in range(TODAY - 14, TODAY)]
    assert list(web) == days, "the 14 complete days before the build's day, oldest first"
    assert sorted(day for day, d in web.items() if d["anomalous"]) == [days[6], days[11]]  # silent, flood
    assert of(report, "web")["anomalous_days"] == 2
    normal = web[days[5]]  # the day before the silence: its window is 14 days of 20 and 21
    assert (normal["events"], normal["anomalous"]) == (20 + (TODAY - 9) % 2, False)
    assert normal["trailing_mean"] == 20.5
    assert normal["trailing_std"] == pytest.approx(math.sqrt(14 * 0.25 / 13))
    silent = web[days[6]]
    assert (silent["events"], silent["trailing_mean"]) == (0, 20.5)

    late = of(report, "late")
    assert [d["events"] for d in late["daily"]] == [0] * 9 + [50] * 5
    assert not any(d["anomalous"] for d in late["daily"])
    assert {d["trailing_mean"] for d in late["daily"]} == {None}, "no full trailing window: not judged"
    assert late["anomalous_days"] == 0


def test_bot_like_subjects_are_counted_per_source_without_ids(runtime: Runtime) -> None:
    """Over 5 events a day is bot-like here: counted for the source that carried that day, not for
    another source it used on a normal day; a subject without a profile (no profiling consent) is
    not counted; the report holds no subject id."""
    config = dataclasses.replace(runtime.profiles, bot_events_per_day=5)
    day = YESTERDAY.replace(hour=10)

    def burst(device: str, events: int, *, purposes: Sequence[str] = PROFILING) -> list[dict[str, Any]]:
        return [
            event(anonymous_id=device, timestamp=day + timedelta(minutes=n), consent_purposes=list(purposes))
            for n in range(events)
        ]

    ingest(
        at(runtime, NOW),
        burst("bot-1", 6) + burst("human", 5) + burst("unprofiled", 9, purposes=["analytics"]),
        source="web",
    )
    ingest(at(runtime, NOW), [sent(NOW, anonymous_id="bot-1", consent_purposes=PROFILING)], source="app")
    ingest(at(runtime, NOW), burst("bot-2", 7), source="feed")
    report = build(runtime, NOW, config)[1]
    assert {r["source"]: r["bot_like_subjects"] for r in report.to_dicts()} == {"web": 1, "app": 0, "feed": 1}
    assert not any("subject" in name and name != "bot_like_subjects" for name in REPORT_SCHEMA)

    default = build(runtime, NOW)[1]  # 2,000 a day: nobody here
    assert set(default["bot_like_subjects"].to_list()) == {0}


def test_the_latest_report_is_read_when_no_build_is_named(runtime: Runtime) -> None:
    ingest(at(runtime, NOW), [sent(NOW, anonymous_id="a")], source="web")
    first, _ = build(runtime, NOW - timedelta(minutes=1))
    second, _ = build(runtime, NOW)
    with runtime.sessions() as session:
        assert reports_for(session)["build_id"].to_list() == [second]
        assert reports_for(session, first)["build_id"].to_list() == [first]
        assert reports_for(session, second + 1).height == 0


QUALITY = """
query($build: ID) {
  dataQuality(buildId: $build) {
    buildId source rows lastOccurredAt lastReceivedAt
    nullRates { field rate }
    ingested {
      accepted duplicates rejected rejects { code count }
      newSubjects { value suppressed } merges { value suppressed }
      refusedMerges { value suppressed } identityLimitHits { value suppressed }
    }
    ingestedLastDay { accepted }
    dailyVolumes { day events trailingMean anomalous }
    anomalousDays botLikeSubjects { value suppressed }
  }
}"""

INGEST = """
mutation($batch: EventBatchInput!) { ingestEvents(batch: $batch) { accepted rejected { code } errors { code } } }"""


def test_analysts_read_the_report_over_http_and_partners_are_refused(live_server: LiveServer) -> None:
    """An undeclared source label is read back only in its stored (keyed) form."""
    admin, analyst, partner = (live_server.issue_key(role) for role in (Role.ADMIN, Role.ANALYST, Role.PARTNER))
    when = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    def segment_event(n: int, **extra: Any) -> dict[str, Any]:
        return {
            "messageId": f"quality-{n}",
            "type": "page_view",
            "channel": "web",
            "timestamp": when,
            "anonymousId": f"quality-dev-{n}",
            "context": {"consent": {"purposes": ["analytics"]}},
            **extra,
        }

    batch = {
        "source": "shop-eu",
        "events": [
            segment_event(1),
            segment_event(2),
            segment_event(3, context={"traits": {"email": "not-an-email"}, "consent": {"purposes": ["analytics"]}}),
        ],
    }
    sent_once = live_server.graphql(INGEST, token=admin, variables={"batch": batch}).json()["data"]["ingestEvents"]
    assert (sent_once["accepted"], sent_once["rejected"]) == (2, [{"code": "INVALID_EMAIL"}])
    assert (
        live_server.graphql(INGEST, token=admin, variables={"batch": batch}).json()["data"]["ingestEvents"]["accepted"]
        == 0
    )
    build_id, _ = build(live_server.runtime, datetime.now(UTC))
    stored_source = live_server.runtime.kit.labels.kept("shop-eu")
    assert stored_source != "shop-eu"

    response = live_server.graphql(QUALITY, token=analyst, variables={"build": str(build_id)})
    assert "shop-eu" not in response.text
    assert "errors" not in response.json()
    [shop] = [s for s in response.json()["data"]["dataQuality"] if s["source"] == stored_source]
    assert shop["buildId"] == str(build_id)
    assert shop["rows"] == 2
    # Counts of records as they are; counts of people (2 new subjects, 0 merges...) are released
    # to an analyst like any aggregate: below k, hidden.
    hidden = {"value": None, "suppressed": "below_k"}
    assert shop["ingested"] == {
        "accepted": 2,
        "duplicates": 2,
        "rejected": 2,
        "rejects": [{"code": "INVALID_EMAIL", "count": 2}],
        "newSubjects": hidden,
        "merges": hidden,
        "refusedMerges": hidden,
        "identityLimitHits": hidden,
    }
    assert shop["botLikeSubjects"] == hidden
    for_admin = live_server.graphql(QUALITY, token=admin, variables={"build": str(build_id)}).json()
    [exact] = [s for s in for_admin["data"]["dataQuality"] if s["source"] == stored_source]
    assert (exact["ingested"]["newSubjects"], exact["ingested"]["merges"]) == (
        {"value": 2, "suppressed": None},
        {"value": 0, "suppressed": None},
    ), "exact for the operators"
    assert {rate["field"]: rate["rate"] for rate in shop["nullRates"]} == {
        "topics": 1.0,
        "amount": 1.0,
        "currency": 1.0,
        "campaign": 1.0,
        "region": 1.0,
    }
    assert len(shop["dailyVolumes"]) == 14

    latest = live_server.graphql(QUALITY, token=analyst).json()["data"]["dataQuality"]
    with live_server.runtime.sessions() as session:
        assert {s["buildId"] for s in latest} == {str(reports_for(session)["build_id"][0])}
    assert live_server.graphql(QUALITY, token=analyst, variables={"build": "not-a-build"}).json()["data"] == {
        "dataQuality": []
    }

    refused = live_server.graphql(QUALITY, token=partner, variables={"build": str(build_id)}).json()
    assert refused["data"] is None
    assert [error["extensions"]["code"] for error in refused["errors"]] == ["FORBIDDEN"]


ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
NOT_BUILD_IDS: dict[str, Callable[[int], str]] = {
    "letters": lambda _real: "not-a-build",
    "negative": lambda real: f"-{real}",
    "past-64-bits": lambda _real: "9" * 20,
    "another-scripts-digits": lambda real: str(real).translate(ARABIC_INDIC),  # int() reads them as the real id
}


@pytest.mark.parametrize("spelling", sorted(NOT_BUILD_IDS))
def test_a_build_id_that_can_name_no_build_reads_as_an_empty_report(live_server: LiveServer, spelling: str) -> None:
    """Neither an internal error (a number past the column's 64 bits) nor another build's report."""
    sent = event(anonymous_id="quality-ids", timestamp=datetime.now(UTC) - timedelta(minutes=5))
    assert ingest(live_server.runtime, [sent]).accepted == 1
    real, report = build(live_server.runtime, datetime.now(UTC))
    assert report.height > 0
    analyst = live_server.issue_key(Role.ANALYST)
    build_id = NOT_BUILD_IDS[spelling](real)
    body = live_server.graphql(QUALITY, token=analyst, variables={"build": build_id}).json()
    assert body == {"data": {"dataQuality": []}}
