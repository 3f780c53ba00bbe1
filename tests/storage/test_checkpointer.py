"""The WAL is copied back by the runtime's own thread, so that commits do not pay for it.

What SQLite did is read from its WAL-index (the ``-shm`` file, https://sqlite.org/walformat.html):
``mxFrame`` counts the frames in the log, ``nBackfill`` those already copied into the database.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from privacy.keyring import Keyring
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.checkpointer import CheckpointPass, WalCheckpointer, sqlite_file

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def database_of(runtime: Runtime) -> Path:
    database = sqlite_file(runtime.settings.effective_database_url)
    assert database is not None
    return database


def wal_index(database: Path) -> tuple[int, int]:
    """(frames in the log, frames copied back into the database), as the WAL-index header holds them."""
    header = database.with_name(database.name + "-shm").read_bytes()[:100]
    (max_frame,) = struct.unpack_from("=I", header, 16)
    (backfilled,) = struct.unpack_from("=I", header, 96)
    return max_frame, backfilled


def write(runtime: Runtime, entries: int) -> None:
    """One unit of work appending ``entries`` audit entries: real pages through the real write path."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for n in range(entries):
            unit.audit("test.wal_write", details={"n": n})


def checkpointer_of(runtime: Runtime) -> WalCheckpointer:
    assert runtime.checkpointer is not None
    return runtime.checkpointer


@sqlite_only
def test_a_pass_copies_every_committed_frame_back_into_the_database(runtime: Runtime) -> None:
    write(runtime, entries=500)

    result = checkpointer_of(runtime).checkpoint_and_wait()

    frames, backfilled = wal_index(database_of(runtime))
    assert frames > 0
    assert backfilled == frames
    assert result == CheckpointPass(busy=False, wal_frames=frames, checkpointed_frames=frames)


@sqlite_only
def test_the_commit_after_a_pass_starts_the_log_afresh_instead_of_growing_it(runtime: Runtime) -> None:
    """SQLite checkpoints inside the commit that takes the log past its threshold; a writer that
    begins once a pass has copied everything back starts the log from its first frame instead."""
    database = database_of(runtime)
    write(runtime, entries=500)
    checkpointer_of(runtime).checkpoint_and_wait()
    frames_before, _ = wal_index(database)

    write(runtime, entries=1)

    frames_after, _ = wal_index(database)
    assert frames_after < frames_before


@sqlite_only
def test_sqlite_still_bounds_the_log_when_writers_leave_the_thread_no_gap(
    settings: Settings, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-to-back writers never let the log restart by itself; SQLite's own checkpoint stays on,
    at ``WAL_BOUND_PAGES``, as the bound (lowered here so that a few commits cross it)."""
    bound = 50
    monkeypatch.setattr("server.runtime.WAL_BOUND_PAGES", bound)
    runtime = build_runtime(settings, keyring=keyring)
    try:
        checkpointer_of(runtime).stop()  # as if every pass came too late for the next writer
        frames = []
        for _ in range(30):
            write(runtime, entries=40)
            frames.append(wal_index(database_of(runtime))[0])
    finally:
        runtime.dispose()
    commit_sizes = [after - before if after > before else after for before, after in pairwise([0, *frames])]
    assert sum(commit_sizes) > 2 * (bound + max(commit_sizes))
    assert max(frames) < bound + max(commit_sizes)


@sqlite_only
def test_dispose_stops_the_thread_and_closes_its_connection(settings: Settings, keyring: Keyring) -> None:
    runtime = build_runtime(settings, keyring=keyring)
    checkpointer = checkpointer_of(runtime)
    write(runtime, entries=10)
    assert checkpointer.checkpoint_and_wait() is not None  # its connection is open now
    database = database_of(runtime)

    runtime.dispose()
    runtime.dispose()

    assert not checkpointer.running
    # SQLite deletes the log when the last connection to the file closes, and only then.
    assert not database.with_name(database.name + "-wal").exists()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_postgresql_runtime_has_no_checkpointer(runtime: Runtime) -> None:
    assert runtime.checkpointer is None
    write(runtime, entries=1)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:shared?mode=memory&uri=true", "postgresql://u@h/db"]
)
def test_only_a_sqlite_file_gets_a_checkpointer(url: str) -> None:
    assert sqlite_file(url) is None


def test_a_relative_sqlite_path_is_made_absolute_before_the_thread_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_file("sqlite:///data/audience.db") == tmp_path / "data" / "audience.db"


CHECKPOINTER_LOCK_BYTE = 120 + 1
"""WAL_CKPT_LOCK: the shm lock bytes start at offset 120, the checkpointer's is the second."""

HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, int(sys.argv[2]))  # waits for a pass of ours to end
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def checkpoint_running_in_another_process(database: Path) -> Iterator[None]:
    """Another process holds the checkpointer lock, as a second server or an ``audience import`` does mid-checkpoint."""
    shm = database.with_name(database.name + "-shm")
    command = [sys.executable, "-c", HOLD_LOCK, str(shm), str(CHECKPOINTER_LOCK_BYTE)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        try:
            yield
        finally:
            holder.communicate("")


@sqlite_only
def test_a_checkpoint_running_in_another_process_is_a_busy_answer_taken_up_by_the_next_pass(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="audience.storage")
    checkpointer, database = checkpointer_of(runtime), database_of(runtime)
    write(runtime, entries=200)

    with checkpoint_running_in_another_process(database):
        busy = checkpointer.checkpoint_and_wait()
    write(runtime, entries=200)
    after = checkpointer.checkpoint_and_wait()

    assert busy == CheckpointPass(busy=True, wal_frames=-1, checkpointed_frames=-1)
    assert after is not None
    assert not after.busy
    frames, backfilled = wal_index(database)
    assert backfilled == frames > 0
    assert [record for record in caplog.records if record.name == "audience.storage"] == []


def test_a_failing_pass_is_logged_once_by_its_error_name_and_the_thread_lives_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The path may name a person (a home directory); only SQLite's error name is logged."""
    caplog.set_level(logging.WARNING, logger="audience.storage")
    database = tmp_path / "ana.lopez@example.org" / "audience.db"
    database.parent.mkdir()
    database.write_bytes(b"not a database" * 512)
    checkpointer = WalCheckpointer(database).start()
    try:
        failed = [checkpointer.checkpoint_and_wait(), checkpointer.checkpoint_and_wait()]
        database.unlink()
        with closing(sqlite3.connect(database)) as created:
            created.execute("PRAGMA journal_mode=WAL")
            created.execute("CREATE TABLE t (x)")
        recovered = checkpointer.checkpoint_and_wait()
    finally:
        checkpointer.stop()

    assert failed == [None, None]
    assert recovered == CheckpointPass(busy=False, wal_frames=0, checkpointed_frames=0)
    warnings = [record for record in caplog.records if record.name == "audience.storage"]
    assert [getattr(record, "error_type", None) for record in warnings] == ["SQLITE_NOTADB"]
    logged = " ".join(f"{record.getMessage()} {vars(record)}" for record in warnings)
    assert "ana.lopez" not in logged


@sqlite_only
def test_a_commit_asks_for_a_pass_without_waiting_for_the_tick(runtime: Runtime) -> None:
    checkpointer_of(runtime).stop()
    database = database_of(runtime)
    hourly = WalCheckpointer(database, interval_s=3600).start()
    asking = replace(runtime, checkpointer=hourly)
    try:
        write(asking, entries=200)
        deadline = time.monotonic() + 30
        while (index := wal_index(database))[1] != index[0] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hourly.stop()
    frames, backfilled = wal_index(database)
    assert backfilled == frames > 0
