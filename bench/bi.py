"""Analysts' aggregates at scale, each beside DuckDB on the same frames in the same run.

1. Overlap of two segments of 1 M members each (``--members``; 40 % of each in both):
   - ours by sketch: the two stored compact theta sketches (lg_k 12) deserialized and combined
     into the Venn cells and the union (``privacy.sketches.venn``), as ``segmentOverlap`` does
     with method ESTIMATE once the sketches are stored; building a sketch (what a reader pays
     once after a change) is timed apart;
   - ours exactly: ``server.analytics.overlaps.exact_cells`` (Polars: a bit mask per subject, people
     per mask) over the (segment_id, subject_id) frame, as method EXACT does after its read;
   - DuckDB: the same mask-and-count in SQL over the same frame.
   Polars and DuckDB must agree exactly; the sketch's error and whether its bounds hold are printed.
2. Size trends: from stays (segment_id, subject_id, entered_at, exited_at) of ``--segments``
   segments, each segment's size at the end of each of 365 days. Ours (Polars): +1 on the day of
   entry, -1 on the day of exit, summed per day on a full day grid, cumulated per segment. DuckDB:
   the same in SQL (window sum), and the plain range join an analyst would write (days joined to
   the stays open at their end). All three must agree.

The frames are drawn in memory with a fixed seed (subject ids are random 63-bit integers, as the
hash cares nothing for their order); no database is involved, so the figures are the compute.
Times are the best of ``--repeat`` runs after one warm-up.

    PYTHONPATH=. python bench/bi.py [--members 1000000] [--stays 2000000] [--segments 10] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import duckdb
import numpy as np
import polars as pl

from privacy.sketches import build, deserialize, serialize, venn
from server.analytics.overlaps import exact_cells
from server.analytics.sizes import daily_sizes

T = TypeVar("T")
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 365
DAY_US = 86_400_000_000
START_US = int(START.timestamp() * 1_000_000)


def best(repeat: int, work: Callable[[], T]) -> tuple[float, T]:
    work()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    assert result is not None
    return min(times), result


# --- 1. overlap of two segments -----------------------------------------------------------------


def two_segments(members: int, shared: float, seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    both = int(members * shared)
    ids = np.unique(rng.integers(1, 2**63 - 1, size=int(2.2 * members), dtype=np.int64))
    rng.shuffle(ids)
    ids = ids[: 2 * members - both]
    first, second = ids[:members], ids[members - both :]
    return pl.DataFrame(
        {
            "segment_id": np.concatenate([np.full(first.size, 1), np.full(second.size, 2)]).astype(np.int64),
            "subject_id": np.concatenate([first, second]),
        }
    )


def duckdb_cells(connection: duckdb.DuckDBPyConnection) -> dict[tuple[int, ...], int]:
    rows = connection.execute(
        """
        SELECT mask, count(*) FROM (
            SELECT subject_id, sum(CASE segment_id WHEN 1 THEN 1 ELSE 2 END) AS mask
            FROM members GROUP BY subject_id)
        GROUP BY mask"""
    ).fetchall()
    found = {int(mask): int(count) for mask, count in rows}
    return {(0,): found.get(1, 0), (1,): found.get(2, 0), (0, 1): found.get(3, 0)}


def overlap(arguments: argparse.Namespace) -> None:
    members = two_segments(arguments.members, 0.4)
    connection = duckdb.connect()
    connection.execute(f"SET threads = {arguments.threads}")
    connection.register("members", members)
    ids = [members.filter(pl.col("segment_id") == s)["subject_id"].to_list() for s in (1, 2)]

    build_s, sketches = best(arguments.repeat, lambda: [build(i) for i in ids])
    stored = [serialize(sketch) for sketch in sketches]
    sketch_s, estimated = best(arguments.repeat, lambda: venn([deserialize(data) for data in stored]))
    polars_s, exact = best(arguments.repeat, lambda: exact_cells(members, [1, 2]))
    duck_s, sql = best(arguments.repeat, lambda: duckdb_cells(connection))
    assert exact == sql, f"Polars {exact} != DuckDB {sql}"

    print(f"overlap of two segments of {arguments.members:,} members each ({members.height:,} membership rows)")
    for chosen, name in (((0,), "A only"), ((1,), "B only"), ((0, 1), "A&B")):
        cell = estimated.cells[chosen]
        error = (cell.value - exact[chosen]) / exact[chosen] * 100
        held = "within" if cell.low <= exact[chosen] <= cell.high else "OUTSIDE"
        print(
            f"  {name:7} exact {exact[chosen]:>9,}  sketch {cell.value:>11,.0f} ({error:+.2f} %, "
            f"bounds {cell.low:,.0f}..{cell.high:,.0f}: {held})"
        )
    union = sum(exact.values())
    print(f"  union   exact {union:>9,}  sketch {estimated.union.value:>11,.0f}")
    print(f"  sketch size: {len(stored[0]):,} + {len(stored[1]):,} bytes")
    print(f"  build two sketches (once per change):      {build_s * 1000:8.1f} ms")
    print(f"  ours by sketch (deserialize + Venn cells): {sketch_s * 1000:8.2f} ms")
    print(f"  ours exactly (Polars, from the frame):     {polars_s * 1000:8.1f} ms")
    print(f"  DuckDB exactly (SQL, same frame):          {duck_s * 1000:8.1f} ms")
    print(f"  ratio Polars / DuckDB: {polars_s / duck_s:.2f}; DuckDB / sketch: {duck_s / sketch_s:,.0f}x")


# --- 2. daily size trends -----------------------------------------------------------------------


def stays(count: int, segments: int, seed: int = 13) -> pl.DataFrame:
    """Entries over the year and the 90 days before it; stays of exponential length (mean 60 days),
    a quarter of them still open; a subject has at most one stay per segment here."""
    rng = np.random.default_rng(seed)
    entered = START_US + rng.integers(-90 * DAY_US, DAYS * DAY_US, size=count)
    length = (rng.exponential(60.0, size=count) * DAY_US).astype(np.int64)
    exited = entered + length
    open_ = (rng.random(count) < 0.25) | (exited > START_US + (DAYS + 30) * DAY_US)
    frame = pl.DataFrame(
        {
            "segment_id": rng.integers(1, segments + 1, size=count),
            "subject_id": rng.integers(1, 2**63 - 1, size=count, dtype=np.int64),
            "entered_at": entered,
            "exited_at": np.where(open_, 0, exited),
        }
    )
    as_time = pl.Datetime("us", "UTC")
    return frame.with_columns(
        pl.col("entered_at").cast(as_time),
        pl.when(pl.col("exited_at") > 0).then(pl.col("exited_at")).cast(as_time).alias("exited_at"),
    )


def polars_trend(frame: pl.DataFrame, segments: int) -> pl.DataFrame:
    """Size at the end of day d (``START`` + d + 1 day): entered before then, not exited by then."""
    start = pl.lit(START)

    def day_of(column: str) -> pl.Expr:
        return ((pl.col(column) - start).dt.total_microseconds() // DAY_US).clip(lower_bound=0)

    lazy = frame.lazy()
    deltas = pl.concat(
        [
            lazy.select("segment_id", day=day_of("entered_at"), delta=pl.lit(1, pl.Int64)),
            lazy.filter(pl.col("exited_at").is_not_null()).select(
                "segment_id", day=day_of("exited_at"), delta=pl.lit(-1, pl.Int64)
            ),
        ]
    ).filter(pl.col("day") < DAYS)
    grid = pl.LazyFrame({"segment_id": range(1, segments + 1)}).join(
        pl.LazyFrame({"day": range(DAYS)}, schema={"day": pl.Int64}), how="cross"
    )
    daily = deltas.group_by("segment_id", "day").agg(pl.col("delta").sum())
    return (
        grid.join(daily, on=["segment_id", "day"], how="left")
        .with_columns(pl.col("delta").fill_null(0))
        .sort("segment_id", "day")
        .select("segment_id", "day", size=pl.col("delta").cum_sum().over("segment_id"))
        .collect()
    )


def product_trend(frame: pl.DataFrame, segments: int) -> pl.DataFrame:
    """What ``segmentSizeTrend`` computes (``server.analytics.sizes.daily_sizes``: binary search of
    each day's end in the sorted entry and exit dates), one segment after another."""
    days = [START.date() + timedelta(days=offset) for offset in range(DAYS)]
    parts = [
        pl.DataFrame(
            {
                "segment_id": [segment_id] * DAYS,
                "day": list(range(DAYS)),
                "size": daily_sizes(frame.filter(pl.col("segment_id") == segment_id), days),
            },
            schema={"segment_id": pl.Int64, "day": pl.Int64, "size": pl.Int64},
        )
        for segment_id in range(1, segments + 1)
    ]
    return pl.concat(parts)


TREND_WINDOW_SQL = f"""
WITH deltas AS (
    SELECT segment_id, greatest((epoch_us(entered_at) - {START_US}) // {DAY_US}, 0) AS day, 1 AS delta FROM stays
    UNION ALL
    SELECT segment_id, greatest((epoch_us(exited_at) - {START_US}) // {DAY_US}, 0), -1 FROM stays
    WHERE exited_at IS NOT NULL),
daily AS (SELECT segment_id, day, sum(delta) AS delta FROM deltas WHERE day < {DAYS} GROUP BY ALL),
grid AS (SELECT s.segment_id, d.day FROM (SELECT DISTINCT segment_id FROM stays) s, range({DAYS}) d(day))
SELECT g.segment_id, g.day::BIGINT AS day,
       sum(coalesce(daily.delta, 0)) OVER (PARTITION BY g.segment_id ORDER BY g.day)::BIGINT AS size
FROM grid g LEFT JOIN daily ON daily.segment_id = g.segment_id AND daily.day = g.day
ORDER BY 1, 2"""

TREND_JOIN_SQL = f"""
WITH days AS (SELECT d AS day, TIMESTAMPTZ '{START.isoformat()}' + to_days((d + 1)::INTEGER) AS day_end
              FROM range({DAYS}) t(d))
SELECT s.segment_id, days.day::BIGINT AS day, count(*)::BIGINT AS size
FROM days JOIN stays s ON s.entered_at < days.day_end AND (s.exited_at IS NULL OR s.exited_at >= days.day_end)
GROUP BY ALL ORDER BY 1, 2"""


def trends(arguments: argparse.Namespace) -> None:
    frame = stays(arguments.stays, arguments.segments)
    connection = duckdb.connect()
    connection.execute(f"SET threads = {arguments.threads}")
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("stays", frame)

    ours_s, ours = best(arguments.repeat, lambda: polars_trend(frame, arguments.segments))
    product_s, product = best(arguments.repeat, lambda: product_trend(frame, arguments.segments))
    window_s, window = best(arguments.repeat, lambda: connection.sql(TREND_WINDOW_SQL).pl())
    join_s, joined = best(arguments.repeat, lambda: connection.sql(TREND_JOIN_SQL).pl())
    expected = ours.filter(pl.col("size") > 0)
    assert ours.equals(window.cast(dict(ours.schema))), "Polars and DuckDB (window) differ"
    assert ours.equals(product), "segmentSizeTrend's daily_sizes and the bench's Polars differ"
    assert expected.equals(joined.cast(dict(ours.schema))), "Polars and DuckDB (range join) differ"
    end = ours.filter(pl.col("day") == DAYS - 1)["size"].to_list()
    print(
        f"daily sizes over {DAYS} days: {arguments.segments} segments, {frame.height:,} stays "
        f"({frame['exited_at'].null_count():,} open); last-day sizes {min(end):,}..{max(end):,}"
    )
    print(f"  ours (Polars, deltas + cumulative sum):    {ours_s * 1000:8.1f} ms")
    print(f"  product (sizes.daily_sizes, per segment):  {product_s * 1000:8.1f} ms")
    print(f"  DuckDB (same algorithm, window sum):       {window_s * 1000:8.1f} ms")
    print(f"  DuckDB (days range-joined to open stays):  {join_s * 1000:8.1f} ms")
    print(f"  ratio ours / DuckDB window: {ours_s / window_s:.2f}; ours / DuckDB range join: {ours_s / join_s:.2f}")
    print(f"  ratio product / DuckDB window: {product_s / window_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--stays", type=int, default=2_000_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=pl.thread_pool_size())
    arguments = parser.parse_args()
    print(f"threads: {arguments.threads} (Polars pool {pl.thread_pool_size()}); best of {arguments.repeat}")
    overlap(arguments)
    trends(arguments)


if __name__ == "__main__":
    main()
