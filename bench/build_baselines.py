"""The batch build bench's one-pass contenders: the same state and headline features three ways.

Each reads the consenting subjects' events from the database once (ADBC, Arrow, the build's own
query, ``server.profiles.event_reader.consenting_events``, over the whole range of subject ids),
computes the three state frames (daily rollups, first and last times, decayed interest
accumulators per named topic) and the headline features from them, and writes
both back to the database with the same bulk writer (ADBC ingest: binary ``COPY`` on PostgreSQL,
one prepared ``INSERT`` in a transaction on SQLite) into tables keyed like the product's:

- ``polars``: the product's own functions (``server.profiles.state.state_of`` on the streaming
  engine, ``server.profiles.features.features``) over the whole population at once;
- ``duckdb``: SQL over the Arrow table (DuckDB's own SQLite and PostgreSQL scanners are
  extensions it downloads on first use, which this machine cannot: Arrow is how it gets the rows);
- ``pandas``: groupby/agg the way the literature writes it, from the same Arrow table (its
  conversion to pandas counted in its compute).

Formulas, as ``server.profiles.state`` and ``server.profiles.features`` define them: an event
naming topics counts once per distinct topic it names, except for a topic that is a strict
ancestor of another it names (the descendant carries it); an accumulator is
``score = sum(w * 2^(-(as_of - t)/h))`` with ``as_of`` the latest event of its (subject, topic),
``w`` the event type's weight and ``h`` the topic's half-life (``server.profiles.config``).
Features are as of ``as_of``: day windows ``as_of_day - N < day <= as_of_day``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
from build_data import STATE_FRAMES, AdbcFrames, adbc_connection, state_table, write_frame

from server.frames.profiles import PURCHASE
from server.frames.subjects import IDENTITY_SCHEMA, TRAIT_SCHEMA
from server.frames.vocabulary import CHANNEL_ORDER
from server.profiles.config import ProfileConfig
from server.profiles.event_reader import consenting_events
from server.profiles.features import FEATURE_SCHEMA, MONETARY_WINDOW, WINDOWS, FeatureInputs, as_of_day, features
from server.profiles.partitions import Partition
from server.profiles.state import ProfileState, state_of

__all__ = ["HEADLINE", "Timings", "features_table", "run_contender"]

LN2: Final = math.log(2.0)
US_PER_DAY: Final = 86_400_000_000
HEADLINE: Final = pl.Schema(
    {
        name: dtype
        for name, dtype in FEATURE_SCHEMA.items()
        if name not in {"device_count", "identifier_count", "value_tier", "age_band", "region"}
    }
)
"""The features every contender computes: recency, frequency, monetary, channel mix, lifecycle,
the repeat-purchase summary and the bot flag. Left out: what comes from identities and declared
traits (the bench loads none) and the value tier (it needs a build's cut points)."""

State = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
STATE_NAMES: Final = ("daily", "summary", "interests")


def features_table(contender: str) -> str:
    return f"bench_{contender}_features"


@dataclass(frozen=True, slots=True)
class Timings:
    events: int
    read: float
    state: float
    features: float
    write: float
    rows: int

    @property
    def compute(self) -> float:
        return self.state + self.features

    @property
    def total(self) -> float:
        return self.read + self.compute + self.write


# --- polars: the product's functions -------------------------------------------------------------------


def polars_state(events: pl.DataFrame, config: ProfileConfig) -> State:
    state = state_of(events.lazy(), config.interests, streaming=True)
    return state.daily, state.summary, state.interests


def polars_features(state: State, config: ProfileConfig, as_of: datetime) -> pl.DataFrame:
    inputs = FeatureInputs.of(
        ProfileState(*state), traits=TRAIT_SCHEMA.to_frame(), identities=IDENTITY_SCHEMA.to_frame()
    )
    return (
        features(inputs, as_of=as_of, config=config, cut_points=None).select(list(HEADLINE)).collect(engine="streaming")
    )


# --- DuckDB SQL ------------------------------------------------------------------------------------------


def _duckdb_config(connection: duckdb.DuckDBPyConnection, config: ProfileConfig) -> None:
    """The configuration as three small tables: weights by type, half-lives by topic, strict ancestors."""
    lineage = config.interests.lineage
    connection.register("weights", config.interests.weight_frame().to_arrow())
    connection.register("half_lives", config.interests.half_lives().to_arrow())
    connection.register("ancestors", lineage.filter(pl.col("topic") != pl.col("counted_as")).to_arrow())


DUCKDB_STATE: Final = (
    """
    CREATE TEMP TABLE daily AS
    SELECT subject_id, (epoch_us(occurred_at) // {us_per_day})::INTEGER AS day, type, channel,
           count(*)::BIGINT AS events, sum(coalesce(amount, 0.0))::DOUBLE AS amount
    FROM ev GROUP BY ALL
    """,
    """
    CREATE TEMP TABLE summary AS
    SELECT subject_id, min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
           min(occurred_at) FILTER (WHERE type = '{purchase}') AS first_purchase,
           max(occurred_at) FILTER (WHERE type = '{purchase}') AS last_purchase
    FROM ev GROUP BY subject_id
    """,
    """
    CREATE TEMP TABLE interests AS
    WITH named AS (
        SELECT row_number() OVER () AS event, subject_id, type, occurred_at, topics FROM ev WHERE topics IS NOT NULL
    ), listed AS (
        SELECT DISTINCT event, subject_id, type, occurred_at, topic
        FROM (SELECT *, unnest(string_split(topics, ';')) AS topic FROM named)
    ), covered AS (
        SELECT DISTINCT l.event, a.counted_as AS topic FROM listed l JOIN ancestors a ON a.topic = l.topic
    ), accumulators AS (
        SELECT l.subject_id, l.topic, w.weight, l.occurred_at, h.half_life_days,
               max(l.occurred_at) OVER (PARTITION BY l.subject_id, l.topic) AS latest
        FROM listed l
        ANTI JOIN covered c ON c.event = l.event AND c.topic = l.topic
        JOIN weights w ON w.type = l.type
        JOIN half_lives h ON h.topic = l.topic
        WHERE w.weight > 0
    )
    SELECT subject_id, topic,
           sum(weight * exp(-{ln2} * ((epoch_us(latest) - epoch_us(occurred_at)) / {us_per_day}) / half_life_days))
               AS score,
           max(latest) AS as_of
    FROM accumulators GROUP BY subject_id, topic
    """,
)


def duckdb_features_sql(config: ProfileConfig, as_of: datetime) -> str:
    day = as_of_day(as_of)
    rules = config.lifecycle

    def window_sums(w: int) -> str:
        return (
            f"coalesce(sum(events) FILTER (WHERE ago < {w}), 0) AS events_{w}d, "
            f"count(DISTINCT day) FILTER (WHERE ago < {w}) AS active_days_{w}d, "
            f"coalesce(sum(events) FILTER (WHERE is_purchase AND ago < {w}), 0) AS purchases_{w}d"
        )

    channels = ", ".join(
        f"coalesce(sum(events) FILTER (WHERE channel = '{c}'), 0) / sum(events) AS channel_share_{c}"
        for c in CHANNEL_ORDER
    )
    return f"""
    WITH d AS (
        SELECT *, {day} - day AS ago, type = '{PURCHASE}' AS is_purchase FROM daily WHERE day <= {day}
    ), activity AS (
        SELECT subject_id,
               min(ago) AS days_since_last_event,
               min(ago) FILTER (WHERE is_purchase) AS days_since_last_purchase,
               max(ago) AS days_since_first_event,
               {", ".join(window_sums(w) for w in WINDOWS)},
               sum(events) AS events_lifetime,
               count(DISTINCT day) AS active_days_lifetime,
               coalesce(sum(events) FILTER (WHERE is_purchase), 0) AS purchases_lifetime,
               coalesce(sum(amount) FILTER (WHERE is_purchase AND ago < {MONETARY_WINDOW}), 0.0) AS revenue_90d,
               coalesce(sum(amount) FILTER (WHERE is_purchase), 0.0) AS revenue_lifetime,
               {channels}
        FROM d GROUP BY subject_id
    ), purchase_days AS (
        SELECT subject_id, day, sum(amount) AS amount, min(day) OVER (PARTITION BY subject_id) AS first_day
        FROM d WHERE is_purchase GROUP BY subject_id, day
    ), repeats AS (
        SELECT subject_id, count(*) - 1 AS repeat_frequency, max(day) - min(day) AS repeat_recency,
               {day} - min(day) AS repeat_t,
               coalesce(avg(amount) FILTER (WHERE day > first_day), 0.0) AS repeat_monetary
        FROM purchase_days GROUP BY subject_id
    ), bots AS (
        SELECT subject_id, bool_or(events > {config.bot_events_per_day}) AS bot_like
        FROM (SELECT subject_id, day, sum(events) AS events FROM d GROUP BY subject_id, day) GROUP BY subject_id
    )
    SELECT a.*,
           CASE WHEN purchases_90d > 0 THEN revenue_90d / purchases_90d END AS aov_90d,
           CASE WHEN purchases_lifetime > 0 THEN revenue_lifetime / purchases_lifetime END AS aov_lifetime,
           CASE WHEN days_since_first_event < {rules.new_days} THEN 'new'
                WHEN days_since_last_event < {rules.active_days} THEN 'active'
                WHEN days_since_last_event < {rules.churn_days} THEN 'at_risk'
                ELSE 'churned' END AS lifecycle,
           r.repeat_frequency, r.repeat_recency, r.repeat_t, r.repeat_monetary, b.bot_like
    FROM summary s JOIN activity a USING (subject_id)
    LEFT JOIN repeats r USING (subject_id) LEFT JOIN bots b USING (subject_id)
    """


@dataclass(frozen=True, slots=True)
class DuckdbResult:
    state: State
    features: pl.DataFrame
    state_seconds: float
    features_seconds: float
    export_seconds: float
    """Copying the state out of DuckDB, counted with the write."""


def duckdb_run(events: pl.DataFrame, config: ProfileConfig, as_of: datetime) -> DuckdbResult:
    """The Arrow table is scanned in place; the state is kept in DuckDB temporary tables."""
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        _duckdb_config(connection, config)
        connection.register("ev", events.to_arrow())
        started = time.perf_counter()
        for statement in DUCKDB_STATE:
            connection.execute(statement.format(us_per_day=US_PER_DAY, purchase=PURCHASE, ln2=repr(LN2)))
        computed = time.perf_counter()
        found = connection.sql(duckdb_features_sql(config, as_of)).pl()
        featured = time.perf_counter()
        daily, summary, interests = (connection.sql(f"SELECT * FROM {name}").pl() for name in STATE_NAMES)
        exported = time.perf_counter()
    finally:
        connection.close()
    return DuckdbResult(
        state=(daily, summary, interests),
        features=found,
        state_seconds=computed - started,
        features_seconds=featured - computed,
        export_seconds=exported - featured,
    )


# --- pandas, the literature's way ------------------------------------------------------------------------

EPOCH: Final = pd.Timestamp("1970-01-01", tz="UTC")
ONE_DAY: Final = pd.Timedelta(days=1)


def pandas_state(events: pl.DataFrame, config: ProfileConfig) -> tuple[Any, Any, Any]:
    ev = events.to_pandas()
    ev["day"] = ((ev["occurred_at"] - EPOCH) // ONE_DAY).astype("int32")
    ev["amount"] = ev["amount"].fillna(0.0)
    daily = (
        ev.groupby(["subject_id", "day", "type", "channel"], sort=False, observed=True)
        .agg(events=("amount", "size"), amount=("amount", "sum"))
        .reset_index()
    )
    times = ev.groupby("subject_id", sort=False)["occurred_at"]
    bought = ev.loc[ev["type"] == PURCHASE].groupby("subject_id", sort=False)["occurred_at"]
    summary = pd.DataFrame({"first_seen": times.min(), "last_seen": times.max()})
    summary["first_purchase"] = bought.min()
    summary["last_purchase"] = bought.max()
    summary = summary.reset_index()

    named = ev.loc[ev["topics"].notna(), ["subject_id", "type", "occurred_at", "topics"]].reset_index(drop=True)
    named["event"] = np.arange(len(named))
    listed = (
        named.assign(topic=named["topics"].str.split(";"))
        .drop(columns="topics")
        .explode("topic")
        .drop_duplicates(["event", "topic"])
    )
    ancestors = config.interests.lineage.filter(pl.col("topic") != pl.col("counted_as")).to_pandas()
    covered = (
        listed[["event", "topic"]]
        .merge(ancestors[["topic", "counted_as"]], on="topic")
        .drop(columns="topic")
        .rename(columns={"counted_as": "topic"})
        .drop_duplicates()
    )
    marked = listed.merge(covered, on=["event", "topic"], how="left", indicator=True)
    deepest = marked.loc[marked["_merge"] == "left_only"].drop(columns="_merge")
    accumulators = deepest.merge(config.interests.weight_frame().to_pandas(), on="type").merge(
        config.interests.half_lives().to_pandas(), on="topic"
    )
    accumulators = accumulators.loc[accumulators["weight"] > 0]
    accumulators["latest"] = accumulators.groupby(["subject_id", "topic"], sort=False)["occurred_at"].transform("max")
    elapsed_days = (accumulators["latest"] - accumulators["occurred_at"]) / ONE_DAY
    accumulators["decayed"] = accumulators["weight"] * np.exp(-LN2 * elapsed_days / accumulators["half_life_days"])
    interests = (
        accumulators.groupby(["subject_id", "topic"], sort=False)
        .agg(score=("decayed", "sum"), as_of=("latest", "max"))
        .reset_index()
    )
    return daily, summary, interests


def pandas_features(daily: Any, summary: Any, config: ProfileConfig, as_of: datetime) -> Any:
    day = as_of_day(as_of)
    d = daily.loc[daily["day"] <= day].copy()
    d["ago"] = day - d["day"]
    d["is_purchase"] = d["type"] == PURCHASE
    by = d["subject_id"]
    grouped = d.groupby("subject_id", sort=False)
    out = pd.DataFrame(
        {
            "days_since_last_event": grouped["ago"].min(),
            "days_since_last_purchase": d.loc[d["is_purchase"]].groupby("subject_id")["ago"].min(),
            "days_since_first_event": grouped["ago"].max(),
        }
    )
    for w in WINDOWS:
        recent = d["ago"] < w
        out[f"events_{w}d"] = d["events"].where(recent, 0).groupby(by).sum()
        out[f"active_days_{w}d"] = d.loc[recent].groupby("subject_id")["day"].nunique()
        out[f"purchases_{w}d"] = d["events"].where(recent & d["is_purchase"], 0).groupby(by).sum()
    out["events_lifetime"] = grouped["events"].sum()
    out["active_days_lifetime"] = grouped["day"].nunique()
    out["purchases_lifetime"] = d["events"].where(d["is_purchase"], 0).groupby(by).sum()
    window = d["is_purchase"] & (d["ago"] < MONETARY_WINDOW)
    out["revenue_90d"] = d["amount"].where(window, 0.0).groupby(by).sum()
    out["revenue_lifetime"] = d["amount"].where(d["is_purchase"], 0.0).groupby(by).sum()
    out = out.fillna({f"active_days_{w}d": 0 for w in WINDOWS})
    for c in CHANNEL_ORDER:
        out[f"channel_share_{c}"] = d["events"].where(d["channel"] == c, 0).groupby(by).sum() / out["events_lifetime"]
    out["aov_90d"] = (out["revenue_90d"] / out["purchases_90d"]).where(out["purchases_90d"] > 0)
    out["aov_lifetime"] = (out["revenue_lifetime"] / out["purchases_lifetime"]).where(out["purchases_lifetime"] > 0)
    rules = config.lifecycle
    out["lifecycle"] = np.select(
        [
            out["days_since_first_event"] < rules.new_days,
            out["days_since_last_event"] < rules.active_days,
            out["days_since_last_event"] < rules.churn_days,
        ],
        ["new", "active", "at_risk"],
        default="churned",
    )
    days = d.loc[d["is_purchase"]].groupby(["subject_id", "day"], sort=False)["amount"].sum().reset_index()
    days["first_day"] = days.groupby("subject_id")["day"].transform("min")
    purchases = days.groupby("subject_id")
    out["repeat_frequency"] = purchases.size() - 1
    out["repeat_recency"] = purchases["day"].max() - purchases["day"].min()
    out["repeat_t"] = day - purchases["day"].min()
    out["repeat_monetary"] = days.loc[days["day"] > days["first_day"]].groupby("subject_id")["amount"].mean()
    out.loc[out["repeat_frequency"].notna(), "repeat_monetary"] = out["repeat_monetary"].fillna(0.0)
    per_day = d.groupby(["subject_id", "day"], sort=False)["events"].sum()
    out["bot_like"] = (per_day > config.bot_events_per_day).groupby(level="subject_id").any()
    out = out.loc[out.index.isin(summary["subject_id"])]
    return out.reset_index()


# --- the run ----------------------------------------------------------------------------------------------


def _timed(work: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def run_contender(contender: str, url: str, config: ProfileConfig, as_of: datetime) -> Timings:
    """Read, compute, write; each step timed on its own."""
    with adbc_connection(url) as connection:
        events, read = _timed(lambda: consenting_events(AdbcFrames(connection), Partition.whole()))
        exported = 0.0
        if contender == "polars":
            state, state_seconds = _timed(lambda: polars_state(events, config))
            found, features_seconds = _timed(lambda: polars_features(state, config, as_of))
        elif contender == "duckdb":
            result = duckdb_run(events, config, as_of)
            state, found = result.state, result.features
            state_seconds, features_seconds, exported = (
                result.state_seconds,
                result.features_seconds,
                result.export_seconds,
            )
        elif contender == "pandas":
            frames, state_seconds = _timed(lambda: pandas_state(events, config))
            table, features_seconds = _timed(lambda: pandas_features(frames[0], frames[1], config, as_of))
            (state, found), exported = _timed(
                lambda: (tuple(pl.from_pandas(frame) for frame in frames), pl.from_pandas(table))
            )
        else:
            raise ValueError(f"unknown contender {contender!r}")

        def write() -> int:
            for (name, _model, schema), frame in zip(STATE_FRAMES, state, strict=True):
                typed = frame.select(pl.col(column).cast(dtype) for column, dtype in schema.items())
                write_frame(connection, state_table(contender, name), typed)
            typed = found.select(pl.col(column).cast(dtype) for column, dtype in HEADLINE.items())
            write_frame(connection, features_table(contender), typed, mode="replace")
            return int(sum(frame.height for frame in state) + found.height)

        rows, write_seconds = _timed(write)
    return Timings(events.height, read, state_seconds, features_seconds, exported + write_seconds, rows)
