"""Retention purge: demo events with their profile state, half of them past the events' time-to-live.

Figure: ``run_purge`` (receipts kept, events deleted, the profile state cut to match, partition by
partition, each committed), in events purged per second. Baseline in the same run: the raw
ceiling, one ``DELETE FROM events WHERE occurred_at < cutoff`` on an identical second database
(no receipts, no state, one transaction). The demo load writes subjects without identities, so
the quiet ones are erased as anonymous too (through the erasure placeholder on this branch).

    PYTHONPATH=. python bench/retention.py --backend sqlite --events 200000
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from build_data import load_events, prepare_database  # bench/, beside this script
from databases import scratch_database
from sqlalchemy import func, select, text

from privacy.keyring import generate_keyring, write_keyring_file
from server.profiles.build import run_build
from server.retention.report import Category
from server.retention.run import run_purge
from server.runtime import build_runtime
from server.settings import Settings
from server.storage.engine import build_engine
from server.storage.tables import EventRow
from server.taxonomy import load_taxonomy

END = datetime(2024, 6, 1, tzinfo=UTC)
PURGE_AT = END + timedelta(days=396 - 90)  # the cutoff 90 days before END: about the older half of 180 days


def loaded(url: str, directory: Path, events: int) -> Settings:
    prepare_database(url, ())
    write_keyring_file(directory / "keyring.json", generate_keyring())
    settings = Settings(data_dir=directory, database_url=url, keyring_path=directory / "keyring.json")
    build_runtime(settings).dispose()
    load_events(url, events=events, end=END, taxonomy=load_taxonomy())
    return settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=200_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as product_dir, tempfile.TemporaryDirectory() as raw_dir:
        product, raw = Path(product_dir), Path(raw_dir)
        with (
            scratch_database(arguments.backend, product, label="bench_purge") as url,
            scratch_database(arguments.backend, raw, label="bench_purge_raw") as raw_url,
        ):
            settings = loaded(url, product, arguments.events)
            loaded(raw_url, raw, arguments.events)
            runtime = build_runtime(settings)
            try:
                clocked = dataclasses.replace(runtime, clock=lambda: PURGE_AT)
                run_build(dataclasses.replace(runtime, clock=lambda: END))
                with runtime.sessions() as session:
                    stored = session.scalar(select(func.count()).select_from(EventRow))
                started = time.perf_counter()
                report = run_purge(clocked)
                product_s = time.perf_counter() - started
            finally:
                runtime.dispose()
            cutoff = report.cutoffs.events
            engine = build_engine(raw_url)
            try:
                started = time.perf_counter()
                with engine.begin() as connection:
                    raw_deleted = connection.execute(
                        text("DELETE FROM events WHERE occurred_at < :cutoff"),
                        {"cutoff": cutoff.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")},
                    ).rowcount
                raw_s = time.perf_counter() - started
            finally:
                engine.dispose()
    purged = report.removed[Category.EVENTS]["events"]
    print(f"backend {arguments.backend}: {stored:,} events stored, {purged:,} expired")
    print(
        f"  run_purge: {product_s:.2f} s, {purged / product_s:,.0f} events/s "
        f"({report.profile_rows_updated:,} state rows updated, {report.receipts_kept:,} receipts kept, "
        f"{report.subjects_erased:,} quiet subjects erased: the demo load gives subjects no identifier)"
    )
    print(f"  raw DELETE (baseline): {raw_s:.2f} s, {raw_deleted / raw_s:,.0f} events/s ({raw_deleted:,} rows)")


if __name__ == "__main__":
    main()
