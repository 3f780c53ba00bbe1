"""Serving: the partner's visitor lookup over HTTP, 2 uvicorn workers, beside its baselines in the same run.

Seeds a database directly (past ingestion, like ``bench/partner_lookup_timing.py``): ``--subjects``
subjects, each with a partner user id in the bench partner's scope, consent to every purpose (and
to sharing with the partner for 90 % of them: the others answer as unknown), a few days of profile
state with interest accumulators, and memberships in three segments granted to the partner. Then,
for each server and each of ``--connections``, a load generator in a process of its own
(``bench/load.py``) keeps that many connections busy for ``--seconds`` (after a warm-up), asking
for random visitors, 80 % known and 20 % never sent, and prints req/s, p50 and p99:

    (a) audience serve, the GraphQL ``visitor`` query by text (parser and validation caches warm)
    (b) audience serve, the same query by registered ``documentId``
    (c) a bare Starlette JSON endpoint, the same service call (``bench/lookup_baselines.py``)
    (d) a bare Strawberry endpoint with parser and validation caches, the same service call

each with ratios to (c). Then (e), event -> membership change visible in the partner's change
feed (``ingestEvents``, then ``segmentChanges`` polled until the enter appears), p50 / p95, when
the segment engine (``server.segments.evaluate``) is present; skipped, saying so, otherwise.

    python bench/serve.py                                  # SQLite file, 100,000 subjects
    python bench/serve.py --postgres postgresql+psycopg://postgres@127.0.0.1/bench_serve
    python bench/serve.py --subjects 5000 --seconds 2      # a quick check that everything runs
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
from load import LoadResult, drive, request_bytes  # bench/, beside this script
from pydantic import SecretStr
from serving import base_environment, free_port, server
from sqlalchemy import text

from privacy.consent import NO_PARTNER, ConsentPurpose
from privacy.identifiers import IdentifierKind, normalize
from privacy.keyring import Keyring, dumps_keyring, generate_keyring
from privacy.purposes import Purpose
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.consent.service import LEDGER_SCHEMA, record_frame
from server.frames.profiles import DAILY_SCHEMA, INTEREST_SCHEMA, SUMMARY_SCHEMA
from server.partners.service import create_partner
from server.profiles.features import as_of_day
from server.profiles.state import ProfileState
from server.profiles.store import write_state
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.bulk import bulk_insert
from server.storage.engine import build_engine
from server.storage.tables import IdentityRow, SegmentGrantRow, SegmentMembershipRow, SegmentRow, SubjectRow
from server.trusted_documents import service as trusted_documents

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
LOOKUP = (
    "query Lookup($kind: IdentifierKind!, $value: String!, $k: Int!) {"
    " visitor(identifier: {kind: $kind, value: $value}, topInterests: $k) {"
    " asOf segments { name purpose } interests { topic name score } } }"
)
BARE_LOOKUP = LOOKUP.replace("IdentifierKind!", "String!")
TOPICS = [
    "travel",
    "automotive/auto-type/electric-vehicles",
    "healthy-living/fitness-and-exercise/running-and-jogging",
    "food-and-drink/cooking",
    "sports/soccer",
    "technology-and-computing/consumer-electronics",
]
SEGMENTS = ("bench-runners", "bench-travellers", "bench-buyers")
KNOWN_SHARE = 0.8
DISTINCT_REQUESTS = 4_000


@dataclass(frozen=True, slots=True)
class Seeded:
    partner_id: int
    token: str
    subjects: int


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    path: str
    body: Callable[[str, str], bytes]  # (kind, value) -> request body
    headers: dict[str, str]


def seed(runtime: Runtime, subjects: int) -> Seeded:
    """Everything in one transaction, written as columns (the pseudonyms are one HMAC each)."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        now = unit.clock()
        session = unit.session
        partner = create_partner(
            session, name="bench-serve", purposes=[Purpose.PERSONALIZATION, Purpose.ANALYTICS], now=now
        )
        key = api_keys.create_key(session, role=Role.PARTNER, label="bench serve", partner_id=partner.id, now=now)
        trusted_documents.register_documents(
            session, texts=[LOOKUP], partner_id=partner.id, registered_by=None, now=now
        )
        ids = pl.int_range(1, subjects + 1, eager=True, dtype=pl.Int64).alias("subject_id")
        bulk_insert(
            session,
            SubjectRow,
            pl.DataFrame({"id": ids, "created_at": now, "created_rank": 0, "status": "active"}),
            ignore_conflicts=False,
        )
        pseudonyms = [
            runtime.kit.pseudonymizer.pseudonym(
                normalize(IdentifierKind.PARTNER_USER_ID, f"u-{subject}", partner_id=partner.id)
            )
            for subject in range(1, subjects + 1)
        ]
        bulk_insert(
            session,
            IdentityRow,
            pl.DataFrame(
                {
                    "subject_id": ids,
                    "origin_subject_id": ids,
                    "kind": IdentifierKind.PARTNER_USER_ID.value,
                    "key_version": [p.key_version for p in pseudonyms],
                    "pseudonym": [p.digest for p in pseudonyms],
                    "partner_id": partner.id,
                    "first_seen": now,
                },
                schema_overrides={"key_version": pl.Int16, "partner_id": pl.Int32},
            ),
            ignore_conflicts=False,
        )
        purposes = pl.DataFrame(
            {
                "purpose": [p.value for p in ConsentPurpose if p is not ConsentPurpose.SHARING]
                + [ConsentPurpose.SHARING.value],
                "partner_id": [NO_PARTNER] * (len(ConsentPurpose) - 1) + [partner.id],
            },
            schema_overrides={"partner_id": pl.Int64},
        )
        ledger = (
            pl.DataFrame({"subject_id": ids})
            .join(purposes, how="cross")
            .filter((pl.col("purpose") != ConsentPurpose.SHARING.value) | (pl.col("subject_id") % 10 != 0))
            .with_columns(
                granted=pl.lit(True),
                legal_basis=pl.lit("consent"),
                source=pl.lit("bench"),
                policy_version=pl.lit("v1"),
                recorded_at=pl.lit(now),
            )
            .select(LEDGER_SCHEMA.names())
            .cast(LEDGER_SCHEMA)
        )
        record_frame(session, ledger)
        day = as_of_day(now)
        subject_days = pl.DataFrame({"subject_id": ids}).join(pl.DataFrame({"back": [0, 3, 9]}), how="cross")
        topics = pl.DataFrame({"topic": TOPICS, "rank": list(range(len(TOPICS)))})
        interests = (
            pl.DataFrame({"subject_id": ids})
            .join(topics, how="cross")
            .filter((pl.col("subject_id") + pl.col("rank")) % 3 != 0)
            .with_columns(
                score=(pl.col("rank") + pl.col("subject_id") % 7 + 1).cast(pl.Float64),
                as_of=pl.lit(now - timedelta(days=1)),
            )
            .select(INTEREST_SCHEMA.names())
            .cast(INTEREST_SCHEMA)
        )
        write_state(
            session,
            ProfileState(
                daily=subject_days.select(
                    "subject_id",
                    day=(day - pl.col("back")).cast(pl.Int32),
                    type=pl.lit("page_view"),
                    channel=pl.lit("web"),
                    events=pl.lit(4, pl.Int64),
                    amount=pl.lit(0.0),
                ).cast(DAILY_SCHEMA),
                summary=pl.DataFrame({"subject_id": ids})
                .with_columns(
                    first_seen=pl.lit(now - timedelta(days=9)),
                    last_seen=pl.lit(now),
                    first_purchase=pl.lit(None),
                    last_purchase=pl.lit(None),
                )
                .cast(SUMMARY_SCHEMA),
                interests=interests,
            ),
        )
        for position, name in enumerate(SEGMENTS):
            segment = SegmentRow(
                name=name,
                rule={"kind": "all", "children": []},
                rule_text="true",
                depends_on=[],
                time_dependent=False,
                status="ready",
                created_at=now,
                updated_at=now,
            )
            session.add(segment)
            session.flush()
            session.add(
                SegmentGrantRow(segment_id=segment.id, partner_id=partner.id, purpose="personalization", granted_at=now)
            )
            members = ids.filter(ids % (position + 2) == 0)
            bulk_insert(
                session,
                SegmentMembershipRow,
                pl.DataFrame({"segment_id": segment.id, "subject_id": members, "entered_at": now}),
                ignore_conflicts=False,
            )
    if runtime.engine.dialect.name == "postgresql":
        with runtime.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return Seeded(partner.id, key.token, subjects)


def visitors(subjects: int, count: int) -> list[tuple[str, str]]:
    """(kind, value) pairs: 80 % known visitors (a tenth of whom do not share), 20 % never sent."""
    chosen = random.Random(15)
    return [
        ("PARTNER_USER_ID", f"u-{chosen.randint(1, subjects)}")
        if chosen.random() < KNOWN_SHARE
        else ("PARTNER_USER_ID", f"u-never-{chosen.randint(1, 10**9)}")
        for _ in range(count)
    ]


def contenders(seeded: Seeded) -> dict[str, Contender]:
    key = {"authorization": f"Bearer {seeded.token}"}
    document = trusted_documents.document_id(trusted_documents.document_hash(LOOKUP))

    def variables(kind: str, value: str) -> dict[str, Any]:
        return {"kind": kind, "value": value, "k": 5}

    return {
        "(a) GraphQL by text": Contender(
            "(a)", "/graphql", lambda k, v: orjson.dumps({"query": LOOKUP, "variables": variables(k, v)}), key
        ),
        "(b) GraphQL by documentId": Contender(
            "(b)", "/graphql", lambda k, v: orjson.dumps({"documentId": document, "variables": variables(k, v)}), key
        ),
        "(c) bare Starlette JSON": Contender(
            "(c)", "/lookup", lambda k, v: orjson.dumps({"kind": k.lower(), "value": v, "k": 5}), {}
        ),
        "(d) bare Strawberry + caches": Contender(
            "(d)",
            "/graphql",
            lambda k, v: orjson.dumps({"query": BARE_LOOKUP, "variables": variables(k.lower(), v)}),
            {},
        ),
    }


@contextmanager
def running(contender: Contender, environment: dict[str, str], port: int) -> Iterator[None]:
    if contender.name in ("(a)", "(b)"):
        command = [sys.executable, "-m", "server.cli.main", "serve"]
    else:
        factory = "starlette_app" if contender.name == "(c)" else "strawberry_app"
        command = [sys.executable, "-m", "uvicorn", f"lookup_baselines:{factory}", "--factory"]
        command += ["--host", HOST, "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log"]
    with server(command, environment, f"http://{HOST}:{port}/healthz", cwd=HERE if "uvicorn" in command else None):
        yield


def check(contender: Contender, port: int, known: tuple[str, str]) -> None:
    """One known visitor answered with segments, before any load: the bench measures real answers."""
    answer = httpx.post(
        f"http://{HOST}:{port}{contender.path}",
        content=contender.body(*known),
        headers=contender.headers | {"content-type": "application/json"},
    ).json()
    found = answer.get("data", {}).get("visitor") if "data" in answer else answer
    if not found or not found.get("segments"):
        raise RuntimeError(f"{contender.name} answered without segments: {str(answer)[:300]}")


def measure(
    contender: Contender, port: int, asked: list[tuple[str, str]], connections: int, warmup: float, seconds: float
) -> LoadResult:
    requests = [request_bytes(HOST, port, contender.path, contender.body(k, v), contender.headers) for k, v in asked]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(drive, (HOST, port, requests, connections, warmup, seconds))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


INGEST = "mutation($batch: EventBatchInput!) { ingestEvents(batch: $batch) { accepted rejected { index code } } }"
CREATE_SEGMENT = (
    "mutation($name: String!, $rule: String!) { createSegment(name: $name, ruleText: $rule) { errors { code } } }"
)
GRANT_SEGMENT = (
    "mutation($segment: String!, $partner: String!) {"
    " grantSegment(segment: $segment, partner: $partner, purpose: PERSONALIZATION) { errors { code } } }"
)
CHANGES = (
    "query($after: String) { segmentChanges(after: $after, first: 100) {"
    " edges { node { kind segment } } pageInfo { endCursor } } }"
)
LIVE_RULE = "purchases_90d >= 1"
POLL_SECONDS = 0.005


def membership_latency(url: str, keyring: Keyring, directory: Path, seeded: Seeded, rounds: int) -> None:
    """(e): a purchase by a new visitor, sent by the partner, until the enter is in the partner's feed."""
    if importlib.util.find_spec("server.segments.evaluate") is None:
        print("(e) event -> membership change in the feed: SKIPPED, server.segments.evaluate is not on this branch")
        return
    runtime = build_runtime(Settings(data_dir=directory, database_url=url, keyring=SecretStr(dumps_keyring(keyring))))
    try:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            marketer = api_keys.create_key(unit.session, role=Role.MARKETER, label="bench serve", now=unit.clock())
            first_party = api_keys.create_key(unit.session, role=Role.ADMIN, label="bench serve", now=unit.clock())
    finally:
        runtime.dispose()
    port = free_port()
    environment = base_environment(url, directory, keyring, port) | {
        "AUDIENCE_WORKERS": "2",
        "AUDIENCE_RETENTION_INTERVAL_SECONDS": "0",
    }
    segment = f"bench-live-{secrets.token_hex(3)}"
    waits: list[float] = []
    with (
        server([sys.executable, "-m", "server.cli.main", "serve"], environment, f"http://{HOST}:{port}/healthz"),
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as http,
    ):

        def ask(token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = http.post(
                "/graphql", json={"query": query, "variables": variables}, headers={"authorization": f"Bearer {token}"}
            ).json()
            if answer.get("errors"):
                raise RuntimeError(f"(e) refused: {str(answer)[:300]}")
            return answer

        ask(marketer.token, CREATE_SEGMENT, {"name": segment, "rule": LIVE_RULE})
        ask(marketer.token, GRANT_SEGMENT, {"segment": segment, "partner": "bench-serve"})
        cursor = _feed_end(ask, seeded.token, None)
        for round_ in range(rounds):
            person = f"u-live-{round_}-{secrets.token_hex(3)}"
            # Untimed: the person's own consent (first party), then the partner's sharing consent.
            mine = _event(person, "page_view", ["personalization", "profiling"], partner=False)
            ask(first_party.token, INGEST, {"batch": {"source": "web", "events": [mine]}})
            theirs = _event(person, "page_view", ["personalization"], partner=True)
            ask(seeded.token, INGEST, {"batch": {"events": [theirs]}})
            cursor = _settled_feed_end(ask, seeded.token, cursor)
            event = _event(person, "purchase", ["personalization"], partner=True)
            started = time.perf_counter()
            sent = ask(seeded.token, INGEST, {"batch": {"events": [event]}})["data"]["ingestEvents"]
            if sent["accepted"] != 1:
                raise RuntimeError(f"(e) the event was refused: {sent}")
            while True:
                page = ask(seeded.token, CHANGES, {"after": cursor})["data"]["segmentChanges"]
                cursor = page["pageInfo"]["endCursor"] or cursor
                if any(e["node"]["segment"] == segment and e["node"]["kind"] == "ENTER" for e in page["edges"]):
                    waits.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError("(e) no enter in the feed after 30 s")
                time.sleep(POLL_SECONDS)
    print(
        f"(e) event -> enter in the partner's feed, {len(waits)} events one at a time:"
        f" p50 {percentile(waits, 0.5) * 1e3:.0f} ms  p95 {percentile(waits, 0.95) * 1e3:.0f} ms"
        f"  (polling every {POLL_SECONDS * 1e3:.0f} ms)"
    )


def _event(person: str, kind: str, purposes: list[str], *, partner: bool) -> dict[str, Any]:
    """Linked by the person's email; a partner's record also carries its own user id for them."""
    context: dict[str, Any] = {"traits": {"email": f"{person}@bench.example"}, "consent": {"purposes": purposes}}
    if partner:
        context["partnerUserId"] = f"p-{person}"
    return {
        "messageId": f"live-{secrets.token_hex(8)}",
        "type": kind,
        "channel": "partner" if partner else "web",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"revenue": 10.0} if kind == "purchase" else {},
        "context": context,
    }


def _settled_feed_end(
    ask: Callable[[str, str, dict[str, Any]], dict[str, Any]], token: str, cursor: str | None
) -> str | None:
    """The feed's end once the untimed events' evaluation has had time to land (nothing should enter)."""
    time.sleep(0.3)
    return _feed_end(ask, token, cursor)


def _feed_end(ask: Callable[[str, str, dict[str, Any]], dict[str, Any]], token: str, cursor: str | None) -> str | None:
    """The cursor after everything already in the feed (the seeded segments wrote none, but be sure)."""
    while True:
        page = ask(token, CHANGES, {"after": cursor})["data"]["segmentChanges"]
        if not page["edges"]:
            return cursor
        cursor = page["pageInfo"]["endCursor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--only", nargs="*", default=None, help="contender letters to run, e.g. a b")
    parser.add_argument("--changes", type=int, default=50, help="(e): events sent, one at a time")
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to migrate and use")
    options = parser.parse_args()
    print(f"# {platform.node()} python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    keyring = generate_keyring()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        url = options.postgres or f"sqlite:///{directory}/bench.db"
        engine = build_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings = Settings(data_dir=directory, database_url=url, keyring=SecretStr(dumps_keyring(keyring)))
        runtime = build_runtime(settings, keyring=keyring)
        started = time.perf_counter()
        try:
            seeded = seed(runtime, options.subjects)
        finally:
            runtime.dispose()
        print(f"seeded {seeded.subjects:,} subjects on {engine.dialect.name} in {time.perf_counter() - started:.1f} s")
        asked = visitors(seeded.subjects, DISTINCT_REQUESTS)
        known = next(
            p for p in asked if not p[1].startswith("u-never") and int(p[1][2:]) % 2 == 0 and int(p[1][2:]) % 10
        )
        results: dict[tuple[str, int], LoadResult] = {}
        for title, contender in contenders(seeded).items():
            if options.only and contender.name.strip("()") not in options.only:
                continue
            port = free_port()
            environment = base_environment(url, directory, keyring, port) | {
                "AUDIENCE_WORKERS": "2",
                "AUDIENCE_RETENTION_INTERVAL_SECONDS": "0",
                "AUDIENCE_BENCH_PARTNER_ID": str(seeded.partner_id),
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
            }
            with running(contender, environment, port):
                check(contender, port, known)
                for connections in options.connections:
                    results[title, connections] = measure(
                        contender, port, asked, connections, options.warmup, options.seconds
                    )
                    report(title, connections, results[title, connections])
        print_table(results, options.connections)
        membership_latency(url, keyring, directory, seeded, options.changes)


def report(title: str, connections: int, result: LoadResult) -> None:
    rate = result.requests / result.seconds
    p50, p99 = percentile(result.latencies, 0.5) * 1e3, percentile(result.latencies, 0.99) * 1e3
    print(
        f"  {title:30s} {connections:3d} conns  {rate:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        f"  failures {result.failures}",
        flush=True,
    )


def print_table(results: dict[tuple[str, int], LoadResult], connections: list[int]) -> None:
    print("\n| contender | connections | req/s | p50 ms | p99 ms | req/s / (c) | p99 / (c) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (title, count), result in results.items():
        base = results.get(("(c) bare Starlette JSON", count))
        rate = result.requests / result.seconds
        p99 = percentile(result.latencies, 0.99)
        ratio = f"{rate / (base.requests / base.seconds):.2f}" if base else "-"
        p99_ratio = f"{p99 / percentile(base.latencies, 0.99):.2f}" if base else "-"
        print(
            f"| {title} | {count} | {rate:,.0f} | {percentile(result.latencies, 0.5) * 1e3:.2f} | {p99 * 1e3:.2f} "
            f"| {ratio} | {p99_ratio} |"
        )


if __name__ == "__main__":
    main()
