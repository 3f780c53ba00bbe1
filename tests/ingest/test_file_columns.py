"""Optional columns a file leaves out mean "not said", in every format: a file without a ``gpc``
column grants advertising when its consent says so, as an NDJSON record without the key does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr

from privacy.consent import ConsentKey, ConsentPurpose
from privacy.identifiers import IdentifierKind
from privacy.keyring import Keyring, dumps_keyring
from server.consent import service as consent
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.tables import EventRow
from tests.conftest import fresh_database_url
from tests.ingest.batches import count, subject_of
from tests.support.cli import run_audience

DEVICE = "dev-no-gpc-column"
WHEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
FLAT = {
    "message_id": "m-ad-1",
    "event": "ad_click",
    "channel": "ads",
    "timestamp": WHEN.isoformat(),
    "anonymous_id": DEVICE,
}


def csv_file(path: Path, *, empty_gpc: bool = False) -> None:
    columns = {**FLAT, "consent_purposes": "analytics;advertising"}
    if empty_gpc:
        columns["gpc"] = ""
    path.write_text(",".join(columns) + "\n" + ",".join(columns.values()) + "\n", encoding="utf-8")


def parquet_file(path: Path) -> None:
    pl.DataFrame(
        [{**FLAT, "timestamp": WHEN, "consent_purposes": ["analytics", "advertising"]}],
        schema_overrides={"consent_purposes": pl.List(pl.String)},
    ).write_parquet(path)


def ndjson_file(path: Path) -> None:
    record = {
        "messageId": FLAT["message_id"],
        "type": FLAT["event"],
        "channel": FLAT["channel"],
        "timestamp": FLAT["timestamp"],
        "anonymousId": DEVICE,
        "context": {"consent": {"purposes": ["analytics", "advertising"]}},
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")


FILES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "csv": ("events.csv", csv_file),
    "csv, gpc left empty": ("events.csv", lambda path: csv_file(path, empty_gpc=True)),
    "parquet": ("events.parquet", parquet_file),
    "ndjson": ("events.ndjson", ndjson_file),
}


@pytest.fixture
def target(request: pytest.FixtureRequest, backend: str, tmp_path: Path, keyring: Keyring) -> Iterator[Runtime]:
    urls = fresh_database_url(request, backend, tmp_path)
    settings = Settings(data_dir=tmp_path, database_url=next(urls), keyring=SecretStr(dumps_keyring(keyring)))
    runtime = build_runtime(settings, keyring=keyring)
    try:
        yield runtime
    finally:
        runtime.dispose()
        urls.close()


@pytest.mark.parametrize("kind", list(FILES))
def test_a_file_without_gpc_grants_advertising_as_its_consent_says(target: Runtime, tmp_path: Path, kind: str) -> None:
    name, write = FILES[kind]
    path = tmp_path / name
    write(path)
    secret = target.settings.keyring
    assert secret is not None
    env = {
        "AUDIENCE_DATA_DIR": str(tmp_path),
        "AUDIENCE_DATABASE_URL": target.settings.effective_database_url,
        "AUDIENCE_KEYRING": secret.get_secret_value(),
    }
    result = run_audience("import", str(path), directory=tmp_path, env=env)
    assert result.returncode == 0, result.stderr

    assert count(target, EventRow) == 1, "the ad click serves advertising, which its consent grants"
    subject = subject_of(target, IdentifierKind.DEVICE_ID, DEVICE)
    assert subject is not None
    with target.sessions() as session:
        state = consent.current_state(session, subject)
    assert state[ConsentKey(ConsentPurpose.ADVERTISING)].granted
