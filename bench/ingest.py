"""Ingestion throughput: the privacy path beside a bare bulk insert of the same rows, in one run.

Targets (docs/DESIGN "Performance"): file import >= 50,000 events/s (aim 100,000) with HMAC,
encryption of new subjects' data keys and the consent gate; GraphQL batch ingest >= 10,000
events/s in batches of 1,000. For SQLite and for PostgreSQL (a database created for the run and
dropped after), each figure is printed beside its baseline:

    (a) ``audience import`` of a Parquet file: the CLI's reader and ``ingest_events`` chunk by
        chunk, one commit per chunk
        -- and, inside (a), the seconds its real-time profile fold took (``server.profiles.store.fold``,
        timed in place): the share of the import that keeps profiles current (target <= 15 %)
    (b) the same file, same chunks, same commits, bulk-inserted into a plain table with the
        events table's columns by ``server.storage.bulk.bulk_insert`` (the product's own insert),
        no validation, no identities, no consent, no crypto: (a)/(b) is the price of privacy
    (c) ``ingestEvents`` over HTTP (a real ``audience serve``, one worker), batches of 1,000
        Segment-shaped events of two populations alike: one posted one batch after the other on
        one connection, the other from ``--clients`` connections at once (senders sending together)
    (d) the same JSON, split and posted the same way, to a bare Starlette endpoint (one uvicorn
        worker) that flattens it and bulk-inserts it into the plain table

    python bench/ingest.py [--events 1000000] [--http-events 50000] [--backends sqlite,postgresql] [--clients 4]
    python bench/ingest.py --profile            # cProfile of (a) on SQLite, top functions

The people are fictitious (server.demo); the Parquet file lives in a temporary directory that
is deleted at the end. Figures vary between runs on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import uvicorn
from databases import scratch_database  # bench/, beside this script
from pydantic import SecretStr
from serving import base_environment, free_port, server  # bench/, beside this script
from sqlalchemy import BigInteger, Float, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from privacy.keyring import Keyring, dumps_keyring, generate_keyring
from server.auth import api_keys
from server.auth.principal import SYSTEM_ACTOR, Role
from server.demo import generate_population, segment_shape
from server.demo.load import ensure_partners
from server.gc_tuning import tune_for_throughput
from server.ingest import store
from server.ingest.files import DEFAULT_CHUNK_SIZE, EventFile, FileFormat, import_chunks
from server.profiles import store as profile_store
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.base import AutoBigInteger, Base, UtcDateTime
from server.storage.bulk import bulk_insert
from server.storage.engine import build_engine
from server.storage.upsert import table_of
from server.taxonomy import load_taxonomy
from server.taxonomy.taxonomy import Taxonomy

CHUNK = DEFAULT_CHUNK_SIZE  # as `audience import`
HTTP_BATCH = 1_000
EVENTS_PER_PERSON = 50  # the generator's mean


class PlainEventRow(Base):
    """The events table's columns and unique key, nothing else: the baseline's target."""

    __tablename__ = "bench_plain_events"
    __table_args__ = (UniqueConstraint("source", "message_key"),)

    id: Mapped[int] = mapped_column(AutoBigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    message_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    origin_subject_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(48))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    topics: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    campaign: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(16))


def plain_rows(events: pl.DataFrame, *, source: str, now: datetime) -> pl.DataFrame:
    """Flat events to the plain table's columns, as ``store.insert_events`` shapes them, minus the privacy work
    (the message id's bytes stand in for its keyed hash)."""
    resolved = events.with_columns(
        subject_id=pl.int_range(pl.len(), dtype=pl.Int64),
        topics_known=pl.col("topics").fill_null([]),
        message_keys=pl.concat_list(pl.col("message_id").cast(pl.Binary)),
    )
    return store.event_rows(resolved, source=source, now=now)


# --- databases ----------------------------------------------------------------------------------


def database(backend: str, directory: Path) -> AbstractContextManager[str]:
    return scratch_database(backend, directory, label="bench")


def prepared_runtime(url: str, directory: Path, keyring: Keyring) -> Runtime:
    engine = build_engine(url)
    migrate.upgrade(engine)
    table_of(PlainEventRow).create(engine, checkfirst=True)
    engine.dispose()
    settings = Settings(data_dir=directory, database_url=url, keyring=SecretStr(dumps_keyring(keyring)))
    runtime = build_runtime(settings, keyring=keyring)
    ensure_partners(runtime)
    return runtime


# --- (a) and (b): files ----------------------------------------------------------------------------


def file_import(runtime: Runtime, parquet: Path) -> tuple[int, float]:
    started = time.perf_counter()
    with EventFile(parquet, FileFormat.PARQUET) as events:
        totals = import_chunks(runtime, events.chunks(CHUNK), source="bench-file")
    return totals.result.received, time.perf_counter() - started


@contextmanager
def fold_timer() -> Iterator[list[float]]:
    """Seconds spent in the real-time profile fold while it is open, summed over every chunk: the
    part of (a) that goes to keeping the profile state current, measured inside (a) itself."""
    spent = [0.0]
    folding = profile_store.fold

    def timed(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            folding(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    profile_store.fold = timed
    try:
        yield spent
    finally:
        profile_store.fold = folding


def file_baseline(runtime: Runtime, parquet: Path) -> tuple[int, float]:
    started, received = time.perf_counter(), 0
    with EventFile(parquet, FileFormat.PARQUET) as events:
        for chunk in events.chunks(CHUNK):
            with runtime.sessions.begin() as session:
                bulk_insert(session, PlainEventRow, plain_rows(chunk.frame, source="bench-file", now=runtime.clock()))
            received += chunk.frame.height
    return received, time.perf_counter() - started


# --- (c) and (d): HTTP ------------------------------------------------------------------------------


def post_batches(
    url: str, batches: list[list[dict[str, Any]]], *, token: str | None, graphql: bool, clients: int = 1
) -> float:
    """Seconds to post every batch: one after the other on one connection, or from ``clients`` at once."""
    # Encoded with orjson, as a sender pushing this rate would: the standard library's encoder
    # costs the client 6.5 ms per batch of 1,000, which would count against both (c) and (d).
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    query = "mutation($b: EventBatchInput!) { ingestEvents(batch: $b) { received accepted errors { code } } }"

    def post_all(share: list[list[dict[str, Any]]]) -> None:
        with httpx.Client(timeout=120, headers=headers) as client:
            for batch in share:
                if graphql:
                    body = {"query": query, "variables": {"b": {"events": batch, "source": "bench-http"}}}
                    answer = client.post(url, content=orjson.dumps(body))
                    payload = orjson.loads(answer.content)
                    if answer.status_code != 200 or "errors" in payload or payload["data"]["ingestEvents"]["errors"]:
                        raise RuntimeError(f"ingestEvents failed with HTTP {answer.status_code}")
                else:
                    answer = client.post(url, content=orjson.dumps({"events": batch}))
                    if answer.status_code != 200:
                        raise RuntimeError(f"bare endpoint failed with HTTP {answer.status_code}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for done in [pool.submit(post_all, batches[i::clients]) for i in range(clients)]:
            done.result()
    return time.perf_counter() - started


HttpBatches = tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]


def http_batches(people: int, now: datetime, taxonomy: Taxonomy) -> HttpBatches:
    """Two populations alike (other seeds than the file's, so (c) creates subjects as (a) does):
    one for the one-connection run, one for the concurrent run. Not two halves of one timeline,
    whose second half would be later events of the same people (logins, merges): other work."""

    def batches(seed: int) -> list[list[dict[str, Any]]]:
        events = generate_population(people=people, seed=seed, end=now, taxonomy=taxonomy).events
        records = segment_shape(events.lazy()).collect().to_dicts()
        return [records[i : i + HTTP_BATCH] for i in range(0, len(records), HTTP_BATCH)]

    return batches(2), batches(3)


def graphql_ingest(
    runtime: Runtime, url: str, directory: Path, keyring: Keyring, batches: HttpBatches, clients: int
) -> tuple[float, float]:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        token = api_keys.create_key(unit.session, role=Role.ADMIN, label="bench", now=unit.clock()).token
    command = [sys.executable, "-m", "server.cli.main", "serve"]
    return post_both_ways(command, "/graphql", url, directory, keyring, batches, clients, token=token, graphql=True)


def bare_ingest(url: str, directory: Path, keyring: Keyring, batches: HttpBatches, clients: int) -> tuple[float, float]:
    command = [sys.executable, __file__, "--serve-bare", url]
    return post_both_ways(command, "/events", url, directory, keyring, batches, clients, token=None, graphql=False)


def post_both_ways(
    command: list[str],
    path: str,
    url: str,
    directory: Path,
    keyring: Keyring,
    batches: HttpBatches,
    clients: int,
    *,
    token: str | None,
    graphql: bool,
) -> tuple[float, float]:
    """Seconds for the first population on one connection and the second from ``clients`` at once."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}{path}"
    one, many = batches
    with server(
        [*command, "--port", str(port)],
        base_environment(url, directory, keyring, port),
        f"http://127.0.0.1:{port}/healthz",
    ):
        return (
            post_batches(endpoint, one, token=token, graphql=graphql),
            post_batches(endpoint, many, token=token, graphql=graphql, clients=clients),
        )


def serve_bare(url: str, port: int) -> None:
    """(d): parse the JSON, flatten with dict access, bulk-insert; no auth, no validation, no privacy."""
    engine = build_engine(url)

    def store(events: list[dict[str, Any]]) -> int:
        frame = pl.DataFrame(
            {
                "message_id": [e.get("messageId") for e in events],
                "event": [e.get("type") for e in events],
                "channel": [e.get("channel") for e in events],
                "timestamp": [e.get("timestamp") for e in events],
                "topics": [(e.get("properties") or {}).get("topics") for e in events],
                "amount": [(e.get("properties") or {}).get("amount") for e in events],
                "currency": [(e.get("properties") or {}).get("currency") for e in events],
                "campaign": [(e.get("properties") or {}).get("campaign") for e in events],
                "region": [(e.get("properties") or {}).get("region") for e in events],
            },
            schema_overrides={"topics": pl.List(pl.String), "amount": pl.Float64},
        ).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC", time_unit="us", strict=False))
        with Session(engine) as session, session.begin():
            bulk_insert(session, PlainEventRow, plain_rows(frame, source="bench-http", now=datetime.now(UTC)))
        return frame.height

    async def events(request: Request) -> JSONResponse:
        body = orjson.loads(await request.body())  # as the GraphQL server decodes (StrawberryView)
        return JSONResponse({"received": await run_in_threadpool(store, body["events"])})

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/events", events, methods=["POST"]), Route("/healthz", healthz)])
    tune_for_throughput()  # the same collector settings as `audience serve`
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the run -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpFigures:
    clients: int
    rate: float
    baseline_rate: float


@dataclass(frozen=True)
class Figures:
    backend: str
    file_events: int
    file_rate: float
    file_baseline_rate: float
    fold_share: float
    http: list[HttpFigures]


def run_backend(
    backend: str, parquet: Path, batches: HttpBatches, keyring: Keyring, *, http: bool, clients: int
) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as raw, database(backend, Path(raw)) as url:
        directory = Path(raw)
        runtime = prepared_runtime(url, directory, keyring)
        try:
            received, baseline_seconds = file_baseline(runtime, parquet)
            with fold_timer() as fold_seconds:
                _, import_seconds = file_import(runtime, parquet)
            http_figures: list[HttpFigures] = []
            if http:
                one, many = (sum(len(b) for b in half) for half in batches)
                bare_one, bare_many = bare_ingest(url, directory, keyring, batches, clients)
                graphql_one, graphql_many = graphql_ingest(runtime, url, directory, keyring, batches, clients)
                http_figures = [
                    HttpFigures(1, one / graphql_one, one / bare_one),
                    HttpFigures(clients, many / graphql_many, many / bare_many),
                ]
        finally:
            runtime.dispose()
    return Figures(
        backend=backend,
        file_events=received,
        file_rate=received / import_seconds,
        file_baseline_rate=received / baseline_seconds,
        fold_share=fold_seconds[0] / import_seconds,
        http=http_figures,
    )


def print_table(figures: list[Figures]) -> None:
    print(f"{'backend':<11} {'figure vs baseline':<62} {'events/s':>9} {'baseline':>9} {'ratio':>6}")
    for f in figures:
        print(
            f"{f.backend:<11} {'(a) file import, privacy path  vs (b) bare bulk insert':<62} "
            f"{f.file_rate:>9,.0f} {f.file_baseline_rate:>9,.0f} {f.file_rate / f.file_baseline_rate:>6.2f}"
        )
        print(f"{'':<11} {'    of which the real-time profile fold (share of (a))':<62} {f.fold_share:>26.1%}")
        for h in f.http:
            label = f"(c) GraphQL ingestEvents  vs (d) bare Starlette, {h.clients} client{'s' if h.clients > 1 else ''}"
            print(f"{'':<11} {label:<62} {h.rate:>9,.0f} {h.baseline_rate:>9,.0f} {h.rate / h.baseline_rate:>6.2f}")
        if not f.http:
            print(f"{'':<11} (c)/(d) skipped (--no-http)")
    print()
    print("ratio = figure / its baseline, measured in the same run; targets: (a) >= 50,000/s, (c) >= 10,000/s")


def profile_import(parquet: Path, keyring: Keyring, top: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as raw, database("sqlite", Path(raw)) as url:
        runtime = prepared_runtime(url, Path(raw), keyring)
        profiler = cProfile.Profile()
        try:
            profiler.enable()
            file_import(runtime, parquet)
            profiler.disable()
        finally:
            runtime.dispose()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the file (about; default 1,000,000)")
    parser.add_argument("--http-events", type=int, default=50_000, help="events posted over HTTP (default 50,000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-http", action="store_true", help="skip (c) and (d)")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients at once, second half")
    parser.add_argument("--profile", action="store_true", help="profile (a) on SQLite instead of the table")
    parser.add_argument("--serve-bare", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_bare:
        serve_bare(arguments.serve_bare, arguments.port)
        return

    tune_for_throughput()  # as `audience import` and `audience serve` do; (b) and (d) run with it too
    keyring = generate_keyring()
    taxonomy = load_taxonomy()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as raw:
        parquet = Path(raw) / "events.parquet"
        people = max(1, arguments.events // EVENTS_PER_PERSON)
        generate_population(people=people, seed=1, end=now, taxonomy=taxonomy).events.write_parquet(parquet)
        if arguments.profile:
            profile_import(parquet, keyring, top=30)
            return
        batches = http_batches(max(1, arguments.http_events // EVENTS_PER_PERSON // 2), now, taxonomy)
        http_total = sum(len(batch) for half in batches for batch in half)
        print(
            f"ingest bench: {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"polars {pl.__version__}; file {pl.scan_parquet(parquet).select(pl.len()).collect().item():,} events "
            f"in chunks of {CHUNK:,}; HTTP {http_total:,} events in batches of {HTTP_BATCH:,}"
        )
        figures = [
            run_backend(backend, parquet, batches, keyring, http=not arguments.no_http, clients=arguments.clients)
            for backend in arguments.backends.split(",")
            if backend
        ]
    print_table(figures)


if __name__ == "__main__":
    main()
