"""Erasure: one subject in a store of 1 M events (p50 / p95), and 10,000 subjects in bulk, each beside
the bare minimum any erasure must do, in the same run.

Target (docs/DESIGN "Performance"): one subject p95 <= 1 s (aim 100 ms); 10,000 subjects <= 60 s.
For SQLite and PostgreSQL (a database created for the run and dropped after):

    load      demo events straight into a migrated database (``bench/build_data.py``: events,
              subjects, consent_state), then for every subject what ingestion and attributes would
              have written: two identities, a wrapped data key, two encrypted PII fields (random
              bytes of the real sizes), a consent record and a profile summary; ANALYZE. Runs in a
              child process (ADBC and SQLAlchemy never share a SQLite file in one process).
    copy      the database copied (the file; ``CREATE DATABASE .. TEMPLATE``) for the baseline, so
              both sides erase the *same* subjects from the same store
    single    ours: ``erase_subjects`` of one subject in its own unit of work, commit included, for
              ``--single`` subjects drawn at random; on SQLite also the WAL scrub after each commit
              (``scrub_database_files``), timed apart
    bulk      ours: ``erase_subjects`` of ``--bulk`` other subjects in one unit of work
    baseline  on the copy, the same subjects: ``DELETE FROM events WHERE subject_id IN (...)`` and a
              commit, one statement per subject (single) and one for all (bulk)

    python bench/erasure.py                          # 1,000,000 events, both backends
    python bench/erasure.py --events 50000 --bulk 500 --backends sqlite   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from build_data import adbc_connection, analyze, load_events, read_frame, write_frame
from databases import POSTGRES_ADMIN_URL, scratch_database  # bench/, beside this script
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from privacy.keyring import generate_keyring, write_keyring_file
from server.auth.principal import SYSTEM_ACTOR
from server.erasure import erase_subjects, scrub_database_files
from server.runtime import build_runtime
from server.settings import Settings
from server.storage import migrate
from server.storage.engine import build_engine
from server.taxonomy import load_taxonomy

KEYRING_FILE: Final = "keyring.json"
AS_OF: Final = datetime(2024, 6, 1, tzinfo=UTC)
WRAPPED_DEK_BYTES: Final = 60  # version, nonce, 32-byte key, tag
PII_BYTES: Final = 48


def settings_for(url: str, directory: Path) -> Settings:
    return Settings(data_dir=directory, database_url=url, keyring_path=directory / KEYRING_FILE)


# --- load (child process) -------------------------------------------------------------------------


def phase_load(url: str, directory: Path, *, events: int) -> dict[str, Any]:
    started = time.perf_counter()
    engine = build_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    write_keyring_file(directory / KEYRING_FILE, generate_keyring())
    build_runtime(settings_for(url, directory)).dispose()
    loaded = load_events(url, events=events, end=AS_OF, taxonomy=load_taxonomy())
    with adbc_connection(url) as connection:
        ids = read_frame(connection, "SELECT id FROM subjects", pl.Schema({"id": pl.Int64()}))["id"]
        for table, frame in subject_rows(ids).items():
            write_frame(connection, table, frame)
    engine = build_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO profile_summary (subject_id, first_seen, last_seen, first_purchase, last_purchase) "
                "SELECT subject_id, min(occurred_at), max(occurred_at), NULL, NULL FROM events GROUP BY subject_id"
            )
        )
    engine.dispose()
    analyze(url)
    return {"events": loaded.events, "subjects": loaded.subjects, "seconds": time.perf_counter() - started}


def subject_rows(ids: pl.Series) -> dict[str, pl.DataFrame]:
    """What the product holds per subject beside its events (random bytes stand for digests and ciphertexts)."""
    rng = np.random.default_rng(7)
    n = ids.len()

    def blobs(size: int, count: int) -> pl.Series:
        return pl.Series(
            list(rng.bytes(size * count)[i * size : (i + 1) * size] for i in range(count)), dtype=pl.Binary
        )

    at = pl.lit(AS_OF, dtype=pl.Datetime("us", "UTC"))
    identities = pl.concat(
        [
            pl.DataFrame({"subject_id": ids}).with_columns(
                origin_subject_id=pl.col("subject_id"),
                kind=pl.lit(kind),
                key_version=pl.lit(1, pl.Int16),
                pseudonym=blobs(32, n),
                partner_id=pl.lit(None, pl.Int32),
                first_seen=at,
            )
            for kind in ("email", "device_id")
        ]
    )
    keys = pl.DataFrame({"subject_id": ids}).with_columns(
        kek_version=pl.lit(1, pl.Int16), wrapped_dek=blobs(WRAPPED_DEK_BYTES, n), created_at=at
    )
    pii = pl.concat(
        [
            pl.DataFrame({"subject_id": ids}).with_columns(
                field=pl.lit(field), ciphertext=blobs(PII_BYTES, n), updated_at=at
            )
            for field in ("email", "name")
        ]
    )
    records = pl.DataFrame({"subject_id": ids}).with_columns(
        purpose=pl.lit("profiling"),
        partner_id=pl.lit(0, pl.Int32),
        granted=pl.lit(value=True),
        legal_basis=pl.lit("consent"),
        source=pl.lit("bench-erasure"),
        policy_version=pl.lit("2024-05"),
        recorded_at=at,
    )
    return {"identities": identities, "subject_keys": keys, "subject_pii": pii, "consent_records": records}


# --- the copy for the baseline ---------------------------------------------------------------------


@contextmanager
def copy_of(url: str, directory: Path) -> Iterator[str]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        copy = directory / "baseline.db"
        shutil.copyfile(str(parsed.database), copy)
        yield f"sqlite:///{copy}"
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{parsed.database}_copy"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- measuring -------------------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def ours(url: str, directory: Path, single: list[int], bulk: list[int]) -> dict[str, Any]:
    runtime = build_runtime(settings_for(url, directory))
    times, scrubs, events = [], [], 0
    try:
        for subject in single:
            started = time.perf_counter()
            with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
                receipt = erase_subjects(unit, [subject], request_id=None, reason="bench")
            times.append(time.perf_counter() - started)
            events += receipt.rows_removed["events"]
            started = time.perf_counter()
            scrub_database_files(runtime.engine)
            scrubs.append(time.perf_counter() - started)
        started = time.perf_counter()
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            receipt = erase_subjects(unit, bulk, request_id=None, reason="bench")
        bulk_s = time.perf_counter() - started
    finally:
        runtime.dispose()
    result = {"single": percentiles(times), "single_events_mean": events / len(single), "bulk_s": bulk_s}
    result["bulk_rows"] = dict(receipt.rows_removed)
    if runtime.engine.dialect.name == "sqlite":
        result["scrub"] = percentiles(scrubs)
    return result


def baseline(url: str, single: list[int], bulk: list[int]) -> dict[str, Any]:
    engine = build_engine(url)
    times = []
    try:
        for subject in single:
            started = time.perf_counter()
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM events WHERE subject_id IN (:s)"), {"s": subject})
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with engine.begin() as connection:
            placeholders = ", ".join(f":s{i}" for i in range(len(bulk)))
            connection.execute(
                text(f"DELETE FROM events WHERE subject_id IN ({placeholders})"),
                {f"s{i}": subject for i, subject in enumerate(bulk)},
            )
        bulk_s = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"single": percentiles(times), "bulk_s": bulk_s}


def subjects_with_events(url: str) -> list[int]:
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(int(row[0]) for row in connection.execute(text("SELECT DISTINCT subject_id FROM events")))
    finally:
        engine.dispose()


def run_backend(backend: str, arguments: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-erasure-") as scratch:
        directory = Path(scratch)
        with scratch_database(backend, directory, label="bench_erasure") as url:
            child = [sys.executable, __file__, "--phase-load", url, str(directory), str(arguments.events)]
            loaded = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            everyone = subjects_with_events(url)
            chosen = random.Random(3).sample(everyone, arguments.single + arguments.bulk)
            single, bulk = chosen[: arguments.single], chosen[arguments.single :]
            with copy_of(url, directory) as copy:
                base = baseline(copy, single, bulk)
                mine = ours(url, directory, single, bulk)
    return {"backend": backend, "loaded": loaded, "ours": mine, "baseline": base}


def report(result: dict[str, Any]) -> None:
    ours_, base = result["ours"], result["baseline"]
    print(
        f"\n{result['backend']}: {result['loaded']['events']:,} events, {result['loaded']['subjects']:,} subjects "
        f"(loaded in {result['loaded']['seconds']:.0f} s)"
    )
    print(f"  one subject ({ours_['single_events_mean']:.0f} events on average), commit included:")
    print(
        f"    erase_subjects     p50 {ours_['single']['p50_ms']:7.1f} ms   p95 {ours_['single']['p95_ms']:7.1f} ms"
        f"   max {ours_['single']['max_ms']:7.1f} ms"
    )
    print(
        f"    bare DELETE events p50 {base['single']['p50_ms']:7.1f} ms   p95 {base['single']['p95_ms']:7.1f} ms"
        f"   max {base['single']['max_ms']:7.1f} ms"
    )
    if "scrub" in ours_:
        print(f"    WAL scrub after    p50 {ours_['scrub']['p50_ms']:7.1f} ms   p95 {ours_['scrub']['p95_ms']:7.1f} ms")
    rows = ours_["bulk_rows"]
    print(f"  {rows['subjects']:,} subjects in bulk ({rows['events']:,} events, {sum(rows.values()):,} rows):")
    print(f"    erase_subjects     {ours_['bulk_s']:7.2f} s")
    print(f"    bare DELETE events {base['bulk_s']:7.2f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase-load":
        url, directory, events = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(phase_load(url, directory, events=events)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--bulk", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    arguments = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    for backend in arguments.backends.split(","):
        result = run_backend(backend, arguments)
        report(result)
        print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
