"""One rule for a timestamp's zone on every path (GraphQL, CSV, NDJSON, Parquet), record by record.

A timestamp must say its offset from UTC (``Z`` or ``±HH:MM``): a date alone, or a time without
an offset, is refused with ``INVALID_TIMESTAMP`` — the server cannot know which day it was where
the event happened. Whether a record is accepted must not depend on the records around it (a
batch's first timestamp once chose the format for all of them).
"""

from __future__ import annotations

import csv
import json
import secrets
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from server.auth.principal import Role
from server.runtime import build_runtime
from server.settings import Settings
from server.storage.tables import EventRow
from tests.support.cli import run_audience
from tests.support.live_server import LiveServer

AT = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
PLUS_TWO, MINUS_FIVE = timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))

ACCEPTED: dict[str, datetime] = {
    AT.strftime("%Y-%m-%dT%H:%M:%SZ"): AT,
    AT.strftime("%Y-%m-%d %H:%M:%S+00:00"): AT,
    AT.isoformat(): AT,
    AT.astimezone(PLUS_TWO).isoformat(): AT,
    AT.astimezone(MINUS_FIVE).isoformat(): AT,
    AT.astimezone(PLUS_TWO).strftime("%Y-%m-%dT%H:%M:%S+0200"): AT,
    AT.astimezone(PLUS_TWO).strftime("%Y-%m-%dT%H:%M:%S+02"): AT,
    AT.strftime("%Y-%m-%dT%H:%M:%S.250Z"): AT + timedelta(milliseconds=250),
    AT.strftime("%Y-%m-%dT%H:%MZ"): AT.replace(second=0),
    AT.strftime("%Y-%m-%dt%H:%M:%Sz"): AT,
}
REFUSED = [
    AT.strftime("%Y-%m-%d"),
    AT.strftime("%Y-%m-%dT%H:%M:%S"),
    AT.strftime("%Y-%m-%d %H:%M:%S"),
    AT.strftime("%Y-%m-%d %H:%M:%S UTC"),
    AT.strftime("%Y%m%dT%H%M%SZ"),
    AT.strftime("%Y-%m-%dT%H:%M:%S+25:00"),
    "yesterday",
]
# A refused spelling first, then the rest: the first value must not set the format for the others.
SPELLINGS = [REFUSED[0], *ACCEPTED, *REFUSED[1:]]
REFUSED_ROWS = [index for index, spelling in enumerate(SPELLINGS) if spelling not in ACCEPTED]

INGEST = """
mutation($batch: EventBatchInput!) {
  ingestEvents(batch: $batch) { accepted rejected { index code } }
}"""


def stored_times(server_runtime: Any, message_ids: list[str]) -> dict[str, datetime]:
    """By message id: the events table holds each id only as its keyed hash."""
    keys = dict(zip(server_runtime.kit.message_keys.digest_many(message_ids), message_ids, strict=True))
    with server_runtime.sessions() as session:
        rows = session.execute(
            select(EventRow.message_key, EventRow.occurred_at).where(EventRow.message_key.in_(list(keys)))
        ).all()
    return {keys[bytes(key)]: occurred.astimezone(UTC) for key, occurred in rows}


def expected_times(message_ids: list[str]) -> dict[str, datetime]:
    return {m: ACCEPTED[s] for m, s in zip(message_ids, SPELLINGS, strict=True) if s in ACCEPTED}


def test_graphql_takes_a_timestamp_with_an_offset_and_refuses_one_without(live_server: LiveServer) -> None:
    token = live_server.issue_key(Role.ADMIN)
    ids = [f"ts-{secrets.token_hex(6)}" for _ in SPELLINGS]
    events = [
        {
            "messageId": message_id,
            "type": "page_view",
            "channel": "web",
            "timestamp": spelling,
            "anonymousId": f"dev-{secrets.token_hex(4)}",
            "context": {"consent": {"purposes": ["analytics"], "gpc": False}},
        }
        for message_id, spelling in zip(ids, SPELLINGS, strict=True)
    ]

    answer = live_server.graphql(INGEST, token=token, variables={"batch": {"events": events}}).json()

    payload = answer["data"]["ingestEvents"]
    assert [(r["index"], r["code"]) for r in payload["rejected"]] == [(i, "INVALID_TIMESTAMP") for i in REFUSED_ROWS]
    assert stored_times(live_server.runtime, ids) == expected_times(ids)


def _rows(message_ids: list[str]) -> list[dict[str, str]]:
    return [
        {
            "message_id": message_id,
            "event": "page_view",
            "channel": "web",
            "timestamp": spelling,
            "anonymous_id": f"dev-{secrets.token_hex(4)}",
            "consent_purposes": "analytics",
        }
        for message_id, spelling in zip(message_ids, SPELLINGS, strict=True)
    ]


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".ndjson":
        lines = (
            {
                "messageId": row["message_id"],
                "type": row["event"],
                "channel": row["channel"],
                "timestamp": row["timestamp"],
                "anonymousId": row["anonymous_id"],
                "context": {"consent": {"purposes": ["analytics"]}},
            }
            for row in rows
        )
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    else:
        frame = pl.DataFrame(rows).with_columns(consent_purposes=pl.col("consent_purposes").str.split(";"))
        frame.write_parquet(path)


def _report(path: Path) -> list[tuple[int, str]]:
    with path.open(encoding="utf-8") as file:
        return [(int(row["row"]), row["code"]) for row in csv.DictReader(file)]


@pytest.fixture
def initialized(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {"AUDIENCE_DATA_DIR": str(tmp_path / "data"), "AUDIENCE_DATABASE_URL": database_url}
    assert run_audience("init", directory=tmp_path, env=env).returncode == 0
    return env


def _import(tmp_path: Path, env: dict[str, str], path: Path) -> list[tuple[int, str]]:
    report = tmp_path / f"{path.name}.report.csv"
    result = run_audience("import", str(path), "--report", str(report), directory=tmp_path, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return _report(report)


@pytest.mark.parametrize("extension", ["csv", "ndjson", "parquet"])
def test_every_file_format_applies_the_same_rule_record_by_record(
    tmp_path: Path, initialized: dict[str, str], extension: str
) -> None:
    ids = [f"ts-{secrets.token_hex(6)}" for _ in SPELLINGS]
    path = tmp_path / f"events.{extension}"
    _write(path, _rows(ids))

    rejected = _import(tmp_path, initialized, path)

    assert rejected == [(index + 1, "INVALID_TIMESTAMP") for index in REFUSED_ROWS]
    settings = Settings(
        data_dir=Path(initialized["AUDIENCE_DATA_DIR"]), database_url=initialized["AUDIENCE_DATABASE_URL"]
    )
    runtime = build_runtime(settings)
    try:
        assert stored_times(runtime, ids) == expected_times(ids)
    finally:
        runtime.dispose()


@pytest.mark.parametrize(
    ("dtype", "accepted"),
    [
        (pl.Datetime("us", "UTC"), True),
        (pl.Datetime("ms", "Europe/Paris"), True),
        (pl.Datetime("us"), False),
        (pl.Date(), False),
        (pl.Int64(), False),
    ],
    ids=["utc", "paris", "naive", "date", "integer"],
)
def test_a_parquet_timestamp_column_needs_a_time_zone(
    tmp_path: Path, initialized: dict[str, str], dtype: pl.DataType, accepted: bool
) -> None:
    moment = pl.Series("timestamp", [AT.replace(tzinfo=None)], dtype=pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        column = moment.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone).cast(dtype)
    elif isinstance(dtype, pl.Int64):
        column = moment.dt.epoch("us")
    else:
        column = moment.cast(dtype)
    path = tmp_path / "typed.parquet"
    pl.DataFrame(
        {
            "message_id": [f"ts-{secrets.token_hex(6)}"],
            "event": ["page_view"],
            "channel": ["web"],
            "timestamp": column,
            "anonymous_id": ["dev-typed"],
            "consent_purposes": [["analytics"]],
        }
    ).write_parquet(path)

    rejected = _import(tmp_path, initialized, path)

    assert rejected == ([] if accepted else [(1, "INVALID_TIMESTAMP")])
