"""`audience import FILE` as an operator runs it: every format, chunks, reruns, crashes, reports, bad files.

One generated sample (fictitious people, with the generator's deliberate defects) is written in
the three formats; each test imports it into fresh databases and compares what the tables hold.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from privacy.keyring import Keyring, dumps_keyring
from server.cli.main import main
from server.demo import DemoPopulation, generate_population, write_population
from server.demo.load import DEMO_PARTNERS
from server.ingest.vocabulary import EVENT_TYPES, REJECT_MESSAGES
from server.partners.service import create_partner
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.tables import AuditEntryRow, EventRow, SubjectRow
from server.taxonomy import load_taxonomy
from tests.conftest import fresh_database_url
from tests.profiles.state_checks import assert_state_follows_events
from tests.support.state import by_person

PEOPLE = 60
SEED = 20_240_601
JUDGED_REFUSALS = ("NO_CONSENT", "SUPPRESSED")  # refusals after judgement: a record sent again is a duplicate
TABLE_ROW = re.compile(r"^[│|]\s*(.+?)\s*[│|]\s*([\d,]+)\s*[│|]$")


@dataclass(frozen=True)
class Sample:
    directory: Path
    population: DemoPopulation

    def file(self, extension: str) -> Path:
        return self.directory / f"events.{extension}"

    @property
    def size(self) -> int:
        return self.population.events.height


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, int]:
        """The summary table, as the operator reads it."""
        found = (TABLE_ROW.match(line.strip()) for line in self.out.splitlines())
        return {m[1]: int(m[2].replace(",", "")) for m in found if m is not None}


@dataclass(frozen=True)
class Target:
    """A fresh, migrated database with the sample's partners registered, and the env to reach it."""

    runtime: Runtime
    env: dict[str, str]

    def event_ids(self) -> set[bytes]:
        """The stored events' keys (keyed hashes of their message ids; every target has the same keyring)."""
        with self.runtime.sessions() as session:
            return set(session.scalars(select(EventRow.message_key)))

    def active_subjects(self) -> int:
        with self.runtime.sessions() as session:
            return int(session.scalar(select(func.count()).where(SubjectRow.status == "active")) or 0)

    def ingest_batches(self) -> int:
        with self.runtime.sessions() as session:
            return int(session.scalar(select(func.count()).where(AuditEntryRow.action == "ingest.batch")) or 0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    population = generate_population(people=PEOPLE, seed=SEED, end=datetime.now(UTC), taxonomy=load_taxonomy())
    directory = tmp_path_factory.mktemp("sample")
    write_population(population, directory)
    return Sample(directory, population)


@pytest.fixture
def fresh_target(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, keyring: Keyring
) -> Iterator[Callable[[], Target]]:
    made = itertools.count()
    with ExitStack() as stack:

        def make() -> Target:
            directory = tmp_path / f"target-{next(made)}"
            directory.mkdir()
            urls = fresh_database_url(request, backend, directory)
            url = next(urls)
            stack.callback(urls.close)
            secret = dumps_keyring(keyring)
            runtime = build_runtime(
                Settings(data_dir=directory, database_url=url, keyring=SecretStr(secret)), keyring=keyring
            )
            stack.callback(runtime.dispose)
            with runtime.sessions.begin() as session:
                for name, purposes in DEMO_PARTNERS.items():
                    create_partner(session, name=name, purposes=purposes, now=runtime.clock())
            env = {
                "AUDIENCE_DATA_DIR": str(directory),
                "AUDIENCE_DATABASE_URL": url,
                "AUDIENCE_KEYRING": secret,
                "COLUMNS": "200",
            }
            return Target(runtime, env)

        yield make


@pytest.fixture
def audience(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``audience ARGS`` in this process, against the target's database."""

    def run(*args: str, target: Target | None = None, env: dict[str, str] | None = None) -> Run:
        for name in [n for n in os.environ if n.startswith("AUDIENCE_")]:
            monkeypatch.delenv(name)
        for name, value in {**(target.env if target else {}), **(env or {})}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("COLUMNS", "200")
        capsys.readouterr()
        code = main(["import", *args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def report_of(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema={"row": pl.Int64, "code": pl.String, "message": pl.String})


def test_every_format_imports_the_same_sample(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    outcomes = {}
    for extension in ("csv", "ndjson", "parquet"):
        target = fresh_target()
        report_path = tmp_path / f"{extension}.rejected.csv"
        run = audience(str(sample.file(extension)), "--report", str(report_path), target=target)
        assert run.code == 0, run.err
        outcomes[extension] = (run.summary, target.event_ids(), report_of(report_path))

    summary, stored, report = outcomes["parquet"]
    assert summary["received"] == sample.size
    assert summary["accepted"] == len(stored) > 0
    assert summary["rejected"] == report.height > 0, "the sample carries deliberate defects"
    assert summary["accepted"] + summary["duplicates"] + summary["rejected"] == sample.size
    for extension in ("csv", "ndjson"):
        other_summary, other_stored, other_report = outcomes[extension]
        assert other_summary == summary, extension
        assert other_stored == stored, extension
        assert other_report.equals(report), extension


def test_a_file_in_many_chunks_gives_the_same_result_as_one_chunk(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    whole, chunked = fresh_target(), fresh_target()
    one = audience(str(sample.file("parquet")), "--report", str(tmp_path / "one.csv"), target=whole)
    many = audience(
        str(sample.file("parquet")), "--chunk-size", "97", "--report", str(tmp_path / "many.csv"), target=chunked
    )

    assert one.code == many.code == 0, one.err + many.err
    assert (whole.ingest_batches(), chunked.ingest_batches()) == (1, math.ceil(sample.size / 97))
    # A person seen in two chunks may be created twice and merged, so new subjects and merges
    # depend on the cut; what stays is everything else, and the number of people net of merges.
    path_dependent = {"new subjects", "merges", "chunks committed"}
    assert {k: v for k, v in many.summary.items() if k not in path_dependent} == {
        k: v for k, v in one.summary.items() if k not in path_dependent
    }
    assert many.summary["new subjects"] - many.summary["merges"] == one.summary["new subjects"] - one.summary["merges"]
    assert chunked.event_ids() == whole.event_ids()
    assert chunked.active_subjects() == whole.active_subjects()
    assert report_of(tmp_path / "many.csv").equals(report_of(tmp_path / "one.csv")), "record numbers follow the file"


def test_importing_the_same_file_again_stores_nothing_new(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run]
) -> None:
    target = fresh_target()
    first = audience(str(sample.file("csv")), "--chunk-size", "500", target=target)
    stored, subjects = target.event_ids(), target.active_subjects()

    again = audience(str(sample.file("csv")), "--chunk-size", "500", target=target)

    # Judged the first time: stored, or refused for consent or erasure. Sent again, each is a duplicate.
    judged = first.summary["accepted"] + sum(first.summary.get(f"rejected {code}", 0) for code in JUDGED_REFUSALS)
    assert first.code == again.code == 0
    assert first.summary["accepted"] == len(stored)
    assert again.summary["accepted"] == 0
    assert again.summary["duplicates"] == judged > len(stored), "the sample holds records refused for consent"
    assert again.summary["rejected"] == first.summary["rejected"] - (judged - len(stored))
    assert again.summary["new subjects"] == 0
    assert target.event_ids() == stored
    assert target.active_subjects() == subjects


def events_count(target: Target) -> int:
    with target.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)


def test_a_crash_mid_import_then_a_rerun_stores_exactly_what_a_clean_import_does(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run]
) -> None:
    """Killed half-way, so that the chunks the rerun finds committed were judged against a state
    that later chunks moved: judged again, they would land or speak differently."""
    crashed, clean = fresh_target(), fresh_target()
    arguments = [str(sample.file("parquet")), "--chunk-size", "25"]
    reference = audience(*arguments, target=clean)
    halfway = len(clean.event_ids()) // 2
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_")} | crashed.env
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli.main", "import", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while events_count(crashed) < halfway and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    partial = events_count(crashed)

    assert process.returncode == -signal.SIGKILL, "the import must be killed, not finish"
    assert_state_follows_events(crashed.runtime)  # killed mid-chunk: events and profile state never apart
    rerun = audience(*arguments, target=crashed)

    assert rerun.code == reference.code == 0
    assert halfway <= partial < len(clean.event_ids()), "the kill landed half-way, after a commit and before the end"
    assert rerun.summary["duplicates"] >= partial
    assert crashed.event_ids() == clean.event_ids()
    assert events_count(crashed) == events_count(clean)
    assert crashed.active_subjects() == clean.active_subjects()
    assert by_person(crashed.runtime) == by_person(clean.runtime), "the same people with the same ledger and states"
    assert_state_follows_events(crashed.runtime)
    assert_state_follows_events(clean.runtime)


def test_the_rejected_report_names_records_by_number_and_holds_no_values(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    run = audience(str(sample.file("csv")), "--chunk-size", "300", "--report", str(report), target=fresh_target())
    assert run.code == 0, run.err

    listed = report_of(report)
    assert listed.height == run.summary["rejected"] > 0
    assert set(listed["message"]) <= set(REJECT_MESSAGES.values())
    events = sample.population.events
    unknown_types = listed.filter(pl.col("code") == "UNKNOWN_EVENT_TYPE")["row"]
    assert unknown_types.len() > 0
    assert not set(events["event"].gather(unknown_types - 1)) & EVENT_TYPES, "row numbers are 1-based, in file order"

    haystack = report.read_bytes().lower() + run.out.encode().lower() + run.err.encode().lower()
    values = (
        pl.concat([events["email"], events["phone"], events["user_id"], events["message_id"]])
        .drop_nulls()
        .unique()
        .to_list()
    )
    values += sample.population.attributes["email"].to_list()
    assert [v for v in values if v.lower().encode() in haystack] == []


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


BAD_FILES: dict[str, Callable[[Path], Path]] = {
    "missing file": lambda d: d / "nothing-here.csv",
    "unknown extension": lambda d: write_bytes(d / "events.txt", b"message_id\nm-1\n"),
    "not parquet": lambda d: write_bytes(d / "events.parquet", b"PAR1 is not enough" * 10),
    "no message_id column": lambda d: write_bytes(d / "events.csv", b"event,email\npage_view,ana@example.org\n"),
    "not json": lambda d: write_bytes(d / "events.ndjson", b"ana@example.org,page_view\n"),
}


@pytest.mark.parametrize("make", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_file_that_cannot_be_read_ends_in_one_line_and_exit_2(
    make: Callable[[Path], Path], audience: Callable[..., Run], tmp_path: Path
) -> None:
    path = make(tmp_path)

    run = audience(str(path), env={"AUDIENCE_DATA_DIR": str(tmp_path / "data")})

    assert run.code == 2
    [line] = run.err.strip().splitlines()
    assert line.startswith("error: ")
    assert "ana@example.org" not in run.err + run.out
    assert not (tmp_path / "data" / "audience.db").exists(), "nothing is opened for a file that cannot be read"


def test_a_file_that_breaks_part_way_ends_in_one_line_without_its_content(
    fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    rows = b"".join(b"m-%d,page_view,\n" % i for i in range(5)) + b"m-5,click,ana@example.org,one,field,too,many\n"
    path = write_bytes(tmp_path / "events.csv", b"message_id,event,email\n" + rows)

    run = audience(str(path), target=fresh_target())

    assert run.code == 2
    [line] = run.err.strip().splitlines()
    assert line.startswith("error: events.csv: not readable as csv")
    assert "ana@example.org" not in run.err + run.out


def test_columns_outside_the_event_shape_are_counted_and_never_stored(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    chatty = (
        pl.read_csv(sample.file("csv"), infer_schema=False)
        .head(50)
        .with_columns(notes=pl.lit("called about her divorce"), ip_address=pl.lit("203.0.113.7"))
    )
    path = tmp_path / "chatty.csv"
    chatty.write_csv(path)
    target = fresh_target()
    run = audience(str(path), target=target)
    assert run.code == 0, run.err
    assert "2 column(s) outside the event shape were not read" in run.out
    with target.runtime.engine.connect() as connection:
        dump = " ".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM events").fetchall())
    assert "divorce" not in dump
    assert "203.0.113.7" not in dump


def with_fields_outside_the_shape(record: dict[str, Any]) -> dict[str, Any]:
    """A sample record as a chattier tracker sends it: seven fields the shape has no place for."""
    context, properties = record["context"], record["properties"]
    return {
        **record,
        "searchQuery": "flights for Ana Lopez to Lima",
        "ana.lopez@example.org": True,
        "integrations": {"All": True, "Mixpanel": False},
        "sentAt": None,  # a key without a value carries nothing: not counted
        "context": {
            **context,
            "ip": "203.0.113.7",
            "traits": {**context["traits"], "name": "Ana Lopez"},
            "consent": {**context["consent"], "agentNote": "said yes, ask Marta"},
        },
        "properties": {**properties, "note": "called about her divorce"},
    }


def test_ndjson_fields_outside_the_event_shape_are_counted_and_never_stored(
    sample: Sample, fresh_target: Callable[[], Target], audience: Callable[..., Run], tmp_path: Path
) -> None:
    records = [json.loads(line) for line in sample.file("ndjson").read_text().splitlines()[:50]]
    plain_path, chatty_path = tmp_path / "plain.ndjson", tmp_path / "chatty.ndjson"
    plain_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    chatty_path.write_text("".join(json.dumps(with_fields_outside_the_shape(r)) + "\n" for r in records))
    plain, chatty = fresh_target(), fresh_target()

    plain_run = audience(str(plain_path), target=plain)
    chatty_run = audience(str(chatty_path), target=chatty)

    assert plain_run.code == chatty_run.code == 0, plain_run.err + chatty_run.err
    assert "350 field(s) outside the event shape were dropped (nothing stored)" in chatty_run.out
    assert "outside the event shape" not in plain_run.out
    assert chatty_run.summary == plain_run.summary, "the known fields import as they do without the others"
    assert chatty_run.summary["accepted"] > 0
    assert chatty.event_ids() == plain.event_ids()
    with chatty.runtime.engine.connect() as connection:
        dump = " ".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM events").fetchall())
    shown = chatty_run.out + chatty_run.err
    for secret in ("Lima", "Lopez", "lopez", "203.0.113.7", "divorce", "Marta", "Mixpanel"):
        assert secret not in dump, secret
        assert secret not in shown, secret
    for key in ("searchQuery", "integrations", "agentNote", "sentAt"):
        assert key not in shown, "a sender's key names are never shown"
