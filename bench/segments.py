"""Batch segment evaluation of five template-like rules over 1 M profiles, beside DuckDB SQL of the
same rules over the same state, with equal member sets asserted.

The state (daily rollups, first/last times, interest accumulators, traits) is drawn in memory with
a fixed seed, shaped as ``server.frames.profiles`` stores it; both sides read those very frames.
Ours: ``rule_frame`` (every profile feature, the interest scores and event counts the rules need)
and the five compiled expressions, collected once. DuckDB: one SQL query per rule computing only
what that rule reads, written by hand from the formulas in ``docs/profiles.md``. So the ratio
prices the whole feature frame we build once for any number of segments against bespoke SQL.

    PYTHONPATH=. python bench/segments.py [--subjects 1000000] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import duckdb
import numpy as np
import polars as pl

from server.frames.profiles import DAILY_SCHEMA, INTEREST_SCHEMA, SUMMARY_SCHEMA
from server.frames.subjects import IDENTITY_SCHEMA, TRAIT_SCHEMA
from server.profiles.config import InterestConfig, ProfileConfig
from server.profiles.features import FeatureInputs, as_of_day
from server.profiles.state import ProfileState
from server.segments.compile import compile_rule
from server.segments.rule_frame import needs_of, rule_frame
from server.segments.rules import All, Compare, CompareOp, EventWindow, InterestScore, LastDays, OneOf, Rule
from server.taxonomy.taxonomy import load_taxonomy

AS_OF = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOPICS = ["sports", "sports/football", "sports/tennis", "travel", "food-and-drink/cooking"]
RULES: dict[str, Rule] = {
    "active": Compare("lifecycle", CompareOp.EQ, "active"),
    "churned": Compare("lifecycle", CompareOp.EQ, "churned"),
    "high_value": Compare("revenue_lifetime", CompareOp.GE, 400.0),
    "sports_fans": InterestScore("sports", 0.5),
    "fr_de_buyers": All((OneOf("region", ("FR", "DE")), EventWindow("purchase", LastDays(30), at_least=1))),
}


def synthetic_state(subjects: int, seed: int = 7) -> tuple[FeatureInputs, dict[str, pl.DataFrame]]:
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(0, 2**63 - 1, size=subjects, dtype=np.int64))
    per = rng.integers(1, 9, size=ids.size)
    owner = np.repeat(ids, per)
    rows = owner.size
    day0 = as_of_day(AS_OF)
    types = np.array(["page_view", "click", "purchase", "add_to_cart"])[rng.integers(0, 4, rows)]
    daily = (
        pl.DataFrame(
            {
                "subject_id": owner,
                "day": (day0 - rng.integers(0, 365, rows) ** 2 // 365).astype(np.int32),
                "type": types,
                "channel": np.array(["web", "app", "email"])[rng.integers(0, 3, rows)],
                "events": rng.integers(1, 6, rows),
                "amount": np.where(types == "purchase", np.round(rng.random(rows) * 120, 2), 0.0),
            }
        )
        .group_by("subject_id", "day", "type", "channel")
        .agg(pl.col("events").sum(), pl.col("amount").sum())
        .select(list(DAILY_SCHEMA))
        .cast(dict(DAILY_SCHEMA))  # type: ignore[arg-type]
    )
    at = pl.lit(AS_OF).dt.replace_time_zone(None).dt.replace_time_zone("UTC")
    summary = (
        daily.group_by("subject_id")
        .agg(pl.col("day").min().alias("first"), pl.col("day").max().alias("last"))
        .select(
            "subject_id",
            first_seen=at - pl.duration(days=day0 - pl.col("first")),
            last_seen=at - pl.duration(days=day0 - pl.col("last")),
            first_purchase=pl.lit(None, dtype=SUMMARY_SCHEMA["first_purchase"]),
            last_purchase=pl.lit(None, dtype=SUMMARY_SCHEMA["last_purchase"]),
        )
        .cast(dict(SUMMARY_SCHEMA))  # type: ignore[arg-type]
    )
    held = rng.integers(0, 3, size=ids.size)
    interested = np.repeat(ids, held)
    interests = (
        pl.DataFrame(
            {
                "subject_id": interested,
                "topic": np.array(TOPICS)[rng.integers(0, len(TOPICS), interested.size)],
                "score": np.round(rng.random(interested.size) * 15, 3),
                "days": rng.integers(0, 120, interested.size),
            }
        )
        .unique(["subject_id", "topic"])
        .select("subject_id", "topic", "score", as_of=at - pl.duration(days=pl.col("days")))
        .cast(dict(INTEREST_SCHEMA))  # type: ignore[arg-type]
    )
    traits = pl.DataFrame(
        {
            "subject_id": ids,
            "age_band": np.array(["18-24", "25-34", "35-44", "45-54"])[rng.integers(0, 4, ids.size)],
            "region": np.array(["FR", "DE", "ES", "US-CA", "FR-IDF"])[rng.integers(0, 5, ids.size)],
        },
        schema=TRAIT_SCHEMA,
    )
    state = ProfileState(daily, summary, interests)
    inputs = FeatureInputs.of(state, traits=traits, identities=IDENTITY_SCHEMA.to_frame())
    return inputs, {"daily": daily, "interests": interests, "traits": traits}


def ours(inputs: FeatureInputs, config: ProfileConfig) -> dict[str, set[int]]:
    needs = needs_of(RULES.values())
    frame = rule_frame(inputs, needs, as_of=AS_OF, config=config, cut_points=None, taxonomy=load_taxonomy())
    found = frame.select("subject_id", *(compile_rule(rule).alias(name) for name, rule in RULES.items())).collect()
    return {name: set(found.filter(pl.col(name))["subject_id"].to_list()) for name in RULES}


def duckdb_sql(tables: dict[str, pl.DataFrame], config: ProfileConfig, threads: int) -> dict[str, set[int]]:
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    for name, frame in tables.items():
        connection.register(name, frame.to_arrow())
    connection.register("half_lives", config.interests.half_lives().to_arrow())
    connection.register("lineage", config.interests.lineage.to_arrow())
    day = as_of_day(AS_OF)
    rules = config.lifecycle
    activity = f"""
        SELECT subject_id, min({day} - day) AS since_last, max({day} - day) AS since_first,
               sum(CASE WHEN type = 'purchase' THEN amount ELSE 0 END) AS revenue,
               sum(CASE WHEN type = 'purchase' THEN events ELSE 0 END) AS purchases
        FROM daily WHERE day <= {day} GROUP BY subject_id"""
    bots = f"""SELECT subject_id FROM (SELECT subject_id, day, sum(events) AS n FROM daily WHERE day <= {day}
               GROUP BY subject_id, day) WHERE n > {config.bot_events_per_day}"""
    at = AS_OF.replace(tzinfo=None).isoformat(sep=" ")
    queries = {
        "active": f"SELECT subject_id FROM ({activity}) WHERE since_first >= {rules.new_days} "
        f"AND since_last < {rules.active_days}",
        "churned": f"SELECT subject_id FROM ({activity}) WHERE since_first >= {rules.new_days} "
        f"AND since_last >= {rules.churn_days}",
        "high_value": f"SELECT subject_id FROM ({activity}) WHERE purchases > 0 AND revenue >= 400.0",
        "sports_fans": f"""
            SELECT subject_id FROM (
                SELECT i.subject_id, sum(i.score * exp(-ln(2) * greatest(epoch_us(TIMESTAMP '{at}')
                       - epoch_us(i.as_of::TIMESTAMP), 0) / 86400000000.0 / h.half_life_days)) AS raw
                FROM interests i JOIN half_lives h USING (topic)
                JOIN lineage l ON l.topic = i.topic AND l.counted_as = 'sports'
                WHERE i.subject_id IN (SELECT subject_id FROM daily WHERE day <= {day})
                  AND i.subject_id NOT IN ({bots})
                GROUP BY i.subject_id)
            WHERE raw / (raw + {config.interests.saturation}) >= 0.5""",
        "fr_de_buyers": f"""
            SELECT d.subject_id FROM daily d JOIN traits t USING (subject_id)
            WHERE t.region IN ('FR', 'DE') AND d.type = 'purchase' AND d.day > {day - 30} AND d.day <= {day}
            GROUP BY d.subject_id HAVING sum(d.events) >= 1""",
    }
    return {name: {row[0] for row in connection.execute(sql).fetchall()} for name, sql in queries.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=pl.thread_pool_size())
    arguments = parser.parse_args()
    config = ProfileConfig(interests=InterestConfig.from_taxonomy(load_taxonomy()))
    started = time.perf_counter()
    inputs, tables = synthetic_state(arguments.subjects)
    print(
        f"state: {tables['daily'].height:,} daily rows, {tables['interests'].height:,} interest rows, "
        f"{tables['traits'].height:,} profiles (drawn in {time.perf_counter() - started:.1f} s), as of {AS_OF:%Y-%m-%d}"
    )
    ours(inputs, config)  # warm-up: Polars' first plan
    duckdb_sql(tables, config, arguments.threads)
    runs: dict[str, list[float]] = {"ours": [], "duckdb": []}
    for _ in range(3):
        start = time.perf_counter()
        polars_members = ours(inputs, config)
        runs["ours"].append(time.perf_counter() - start)
        start = time.perf_counter()
        sql_members = duckdb_sql(tables, config, arguments.threads)
        runs["duckdb"].append(time.perf_counter() - start)
    for name in RULES:
        assert polars_members[name] == sql_members[name], (
            f"{name}: {len(polars_members[name] ^ sql_members[name])} members differ"
        )
    ours_s, duck_s = min(runs["ours"]), min(runs["duckdb"])
    counts = ", ".join(f"{name} {len(members):,}" for name, members in polars_members.items())
    print(f"members (equal on both sides): {counts}")
    print(f"threads: {arguments.threads}")
    print(f"ours (rule frame + 5 expressions, Polars): {ours_s:.2f} s (best of 3)")
    print(f"DuckDB SQL (5 queries):                    {duck_s:.2f} s (best of 3)")
    print(f"ratio ours / DuckDB: {ours_s / duck_s:.2f}")


if __name__ == "__main__":
    main()
