"""Batch build of the profile state, database to database, beside DuckDB SQL and pandas in the same run.

Target (docs/DESIGN "Performance"): 10 M events in <= 30 s and <= 3 GB, compute within 1.5x of
DuckDB. For SQLite and for PostgreSQL (a database created for the run and dropped after), and for
each ``--events`` size:

    load     demo events (fictitious, ``server.demo``) straight into a migrated database: ``events``,
             ``subjects``, and ``consent_state`` granting ``profiling`` to 80 % of the subjects, by
             bulk loads past ingestion (``bench/build_data.py``; ``bench/ingest.py`` measures
             ingestion); then planner statistics (ANALYZE)
    build    ours: ``server.profiles.build.run_build`` as ``audience build`` runs it: partitions of
             subject ids, each read as Arrow over ADBC, ``state_of`` on Polars' streaming engine,
             the partition's state swapped in one transaction, the run recorded, cut points taken;
             its read, compute and swap timed from outside (wrapped calls, its ``evaluate`` seam)
    polars   the product's functions in one pass over everyone (``bench/build_baselines.py``):
             the same read, ``state_of`` and ``features``, the same writer as the two below
    duckdb   the same state and headline features as DuckDB SQL over the same Arrow read
    pandas   the same with pandas groupby/agg, the literature's way
    check    every contender's state against the build's (keys and counts exact, times exact,
             floats within a relative 1e-9) and the headline features of the three one-pass
             contenders against each other: "agree: yes" or what differs

Every phase runs in a process of its own, one after the other, so its time and memory are its
own: seconds are wall time inside the process (imports and start-up excluded), peak RSS is the
largest of the process's own maximum (``os.wait4``) and the summed resident memory of its process
tree sampled every 50 ms (the build reads SQLite in a child process). Events/s counts the events
read, i.e. those of consenting subjects (~80 % of those stored). The machine's 1-minute load
average is printed beside each phase: other work on the same cores slows every figure.

    python bench/build.py                                   # 1,000,000 events, both backends (~3 min)
    python bench/build.py --events 1000000,10000000 --backends postgresql
    python bench/build.py --events 20000                    # a quick check that everything runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
from build_baselines import HEADLINE, features_table, run_contender
from build_data import STATE_FRAMES, adbc_connection, analyze, load_events, prepare_database, read_frame, state_table
from databases import scratch_database  # bench/, beside this script

from privacy.keyring import generate_keyring, write_keyring_file
from server.gc_tuning import tune_for_throughput
from server.profiles import build as build_module
from server.profiles.build import run_build, streaming_state
from server.profiles.config import profile_config
from server.runtime import build_runtime
from server.settings import Settings
from server.taxonomy import load_taxonomy

CONTENDERS: Final = ("polars", "duckdb", "pandas")
SAMPLE_SECONDS: Final = 0.05
KEYRING_FILE: Final = "keyring.json"
RELATIVE_TOLERANCE: Final = 1e-9


# --- databases ---------------------------------------------------------------------------------------


def database(backend: str, directory: Path) -> AbstractContextManager[str]:
    return scratch_database(backend, directory, label="bench_build")


def settings_for(url: str, directory: Path) -> Settings:
    """What every phase computes under: the defaults (weights, half-lives, lifecycle), this database,
    the keyring file the load phase wrote."""
    return Settings(data_dir=directory, database_url=url, keyring_path=directory / KEYRING_FILE)


# --- phases (each in a process of its own) ------------------------------------------------------------


def phase_load(url: str, directory: Path, *, events: int, as_of: datetime) -> dict[str, Any]:
    """The keyring is bound to the database before any data goes in, as on a real first start."""
    started = time.perf_counter()
    prepare_database(url, CONTENDERS)
    write_keyring_file(directory / KEYRING_FILE, generate_keyring())
    build_runtime(settings_for(url, directory)).dispose()
    loaded = load_events(url, events=events, end=as_of, taxonomy=load_taxonomy())
    loaded_at = time.perf_counter()
    analyze(url)
    return asdict(loaded) | {"seconds": loaded_at - started, "analyze_seconds": time.perf_counter() - loaded_at}


def phase_build(url: str, directory: Path, *, partitions: int | None) -> dict[str, Any]:
    """``run_build`` as it is, with its three steps per partition timed from outside: the read and
    the swap of the state by wrapping the functions the build calls, the compute through its
    ``evaluate`` seam (the product's own ``streaming_state``). The rest is the writers' turn, the
    run's record, the commits and the cut points."""
    spent = {"read": 0.0, "compute": 0.0, "write": 0.0}

    def timed(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[step] += time.perf_counter() - started

        return call

    build_module.consenting_events = timed("read", build_module.consenting_events)  # type: ignore[attr-defined]
    build_module.replace_partition_state = timed("write", build_module.replace_partition_state)  # type: ignore[attr-defined]
    # The stored state it compares with is read like the events (a build writes only what differs).
    build_module.stored_partition_state = timed("read", build_module.stored_partition_state)  # type: ignore[attr-defined]
    runtime = build_runtime(settings_for(url, directory))
    try:
        started = time.perf_counter()
        run = run_build(runtime, partitions=partitions, evaluate=timed("compute", streaming_state))
        seconds = time.perf_counter() - started
    finally:
        runtime.dispose()
    if run.status.value != "succeeded":
        raise RuntimeError(f"the build ended {run.status.value}: {run.error_code}")
    return spent | {
        "events": run.events_read,
        "seconds": seconds,
        "partitions": run.partitions,
        "subjects": run.subjects,
        "rows": run.rows_written,
    }


def phase_contender(contender: str, url: str, directory: Path, *, as_of: datetime) -> dict[str, Any]:
    config = profile_config(settings_for(url, directory), load_taxonomy())
    timings = run_contender(contender, url, config, as_of)
    return asdict(timings) | {"seconds": timings.total, "compute": timings.compute}


def differences(name: str, expected: pl.DataFrame, found: pl.DataFrame, keys: list[str]) -> list[str]:
    """What differs between two frames of one schema, by key: missing or extra rows, and per
    column the rows whose values differ (floats beyond a relative ``RELATIVE_TOLERANCE``)."""
    joined = expected.with_columns(_expected=True).join(
        found.with_columns(_found=True), on=keys, how="full", suffix="_found", coalesce=True, nulls_equal=True
    )
    problems: list[str] = []
    missing = joined.filter(pl.col("_found").is_null()).height
    extra = joined.filter(pl.col("_expected").is_null()).height
    if missing or extra:
        problems.append(f"{name}: {expected.height:,} rows expected, {missing:,} of them missing, {extra:,} extra")
    for column, dtype in expected.schema.items():
        if column in keys:
            continue
        mine, theirs = pl.col(column), pl.col(f"{column}_found")
        if dtype.is_float():
            scale = pl.max_horizontal(mine.abs(), theirs.abs())
            same = ((mine - theirs).abs() <= RELATIVE_TOLERANCE * scale) | (mine.is_null() & theirs.is_null())
        else:
            same = mine.eq_missing(theirs)
        differing = joined.filter(~same.fill_null(value=False)).height
        if differing:
            problems.append(f"{name}.{column}: {differing:,} rows differ")
    return problems


def phase_check(url: str) -> dict[str, Any]:
    """Each contender's state against the build's; the one-pass contenders' features against polars'."""
    keys = {"profile_daily": ["subject_id", "day", "type", "channel"], "profile_summary": ["subject_id"]}
    problems: list[str] = []
    with adbc_connection(url) as connection:
        for name, _model, schema in STATE_FRAMES:
            columns = ", ".join(schema)
            ours = read_frame(connection, f"SELECT {columns} FROM {name}", schema)
            for contender in CONTENDERS:
                table = state_table(contender, name)
                theirs = read_frame(connection, f"SELECT {columns} FROM {table}", schema)
                problems += differences(table, ours, theirs, keys.get(name, ["subject_id", "topic"]))
        columns = ", ".join(HEADLINE)
        reference = read_frame(connection, f"SELECT {columns} FROM {features_table('polars')}", HEADLINE)
        for contender in CONTENDERS[1:]:
            table = features_table(contender)
            theirs = read_frame(connection, f"SELECT {columns} FROM {table}", HEADLINE)
            problems += differences(table, reference, theirs, ["subject_id"])
        subjects = read_frame(connection, "SELECT count(*) FROM profile_summary", pl.Schema({"n": pl.Int64()}))
    return {"agree": not problems, "problems": problems, "subjects": int(subjects["n"][0]), "seconds": 0.0}


def run_phase_here(arguments: argparse.Namespace) -> None:
    """The child side: run one phase, write its result as JSON."""
    tune_for_throughput()  # as `audience build` runs
    as_of = datetime.fromisoformat(arguments.as_of)
    directory = Path(arguments.data_dir)
    url = arguments.url
    if arguments.phase == "load":
        result = phase_load(url, directory, events=arguments.load_events, as_of=as_of)
    elif arguments.phase == "build":
        result = phase_build(url, directory, partitions=arguments.partitions)
    elif arguments.phase == "check":
        result = phase_check(url)
    else:
        result = phase_contender(arguments.phase, url, directory, as_of=as_of)
    Path(arguments.out).write_text(json.dumps(result))


# --- the parent: processes, memory, the table ----------------------------------------------------------


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, from /proc (0 once they are gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


@dataclass(frozen=True, slots=True)
class Measured:
    phase: str
    result: dict[str, Any]
    peak_rss_mb: float
    load_before: float
    load_after: float


def measured(phase: str, url: str, directory: Path, arguments: argparse.Namespace, **extra: Any) -> Measured:
    out = directory / f"{phase}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--url",
        url,
        "--data-dir",
        str(directory),
        "--out",
        str(out),
        "--as-of",
        arguments.as_of,
    ]
    for name, value in extra.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    load_before = os.getloadavg()[0]
    process = subprocess.Popen(command)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"phase {phase} exited with {process.returncode}")
    own_peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    return Measured(
        phase=phase,
        result=json.loads(out.read_text()),
        peak_rss_mb=max(peak, own_peak) / 1e6,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )


@dataclass(frozen=True, slots=True)
class Figures:
    backend: str
    events: int
    load: Measured
    phases: list[Measured]
    check: Measured


def run_size(backend: str, events: int, arguments: argparse.Namespace) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"bench-build-{backend}-") as raw, database(backend, Path(raw)) as url:
        directory = Path(raw)
        load = measured("load", url, directory, arguments, load_events=events)
        stored = load.result["events"]
        print(
            f"{backend}: {stored:,} events loaded in {load.result['seconds']:.1f} s "
            f"({load.result['consenting_events']:,} of them of the {load.result['consenting']:,} subjects "
            f"granting profiling, of {load.result['subjects']:,})",
            flush=True,
        )
        phases = [measured("build", url, directory, arguments, partitions=arguments.partitions)]
        phases += [measured(contender, url, directory, arguments) for contender in CONTENDERS]
        for phase in phases:
            print(f"  {phase.phase}: {phase.result['seconds']:.1f} s, peak {phase.peak_rss_mb:,.0f} MB", flush=True)
        check = measured("check", url, directory, arguments)
    return Figures(backend, stored, load, phases, check)


def print_table(figures: list[Figures]) -> None:
    print(
        f"{'backend':<10} {'events':>11} {'contender':<24} {'read s':>7} {'state s':>7} {'features s':>10} "
        f"{'write s':>7} {'total s':>7} {'events/s':>9} {'peak MB':>8} {'total/DuckDB':>12} {'state/DuckDB':>12} "
        f"{'load avg':>9}"
    )
    for f in figures:
        duck = next(p.result for p in f.phases if p.phase == "duckdb")
        for p in f.phases:
            r = p.result
            if p.phase == "build":
                label, state, featured = f"ours: run_build ({r['partitions']} p.)", r["compute"], "-"
            else:
                label = {"polars": "ours: one pass", "duckdb": "DuckDB SQL", "pandas": "pandas"}[p.phase]
                state, featured = r["state"], f"{r['features']:.2f}"
            print(
                f"{f.backend:<10} {f.events:>11,} {label:<24} {r['read']:>7.2f} {state:>7.2f} {featured:>10} "
                f"{r['write']:>7.2f} {r['seconds']:>7.2f} {r['events'] / r['seconds']:>9,.0f} {p.peak_rss_mb:>8,.0f} "
                f"{r['seconds'] / duck['seconds']:>12.2f} {state / duck['state']:>12.2f} "
                f"{p.load_before:>4.1f}-{p.load_after:<4.1f}"
            )
        verdict = "yes" if f.check.result["agree"] else "no"
        print(f"{f.backend:<10} {f.events:>11,} agree: {verdict} ({f.check.result['subjects']:,} profiles)")
        for problem in f.check.result["problems"][:20]:
            print(f"{'':<10}   {problem}")
    print()
    print(
        "events = events stored; events/s = events read (consenting subjects) / total s; the build's total also "
        "holds its writers' turn, run record, commits and cut points (and on SQLite its reader process's start). "
        "Targets: 10 M events <= 30 s and <= 3 GB; compute within 1.5x of DuckDB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="1000000", help="comma-separated sizes (about; default 1000000)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--partitions", type=int, help="the build's partitions (default: the product's own choice)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--load-events", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.phase:
        run_phase_here(arguments)
        return
    arguments.as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    sizes = [int(size) for size in arguments.events.split(",") if size]
    backends = [backend for backend in arguments.backends.split(",") if backend]
    print(
        f"build bench: Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"polars {pl.__version__}, duckdb {duckdb.__version__}, pandas {pd.__version__}; "
        f"as of {arguments.as_of}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    figures = [run_size(backend, size, arguments) for size in sizes for backend in backends]
    print()
    print_table(figures)


if __name__ == "__main__":
    main()
