"""Copies SQLite's write-ahead log back into the database file on a thread of its own.

Left to itself, SQLite checkpoints inside whichever commit pushes the WAL past
``wal_autocheckpoint`` pages, on a writer's critical path: copying ~40 MB and syncing it took
~150 ms once every dozen 1,000-event GraphQL batches (half of the average commit), and each
200,000-event chunk of a file import crossed the threshold on its own and paid ~1 s to copy its
~160 MB back. Here a daemon thread with its own plain connection runs a PASSIVE checkpoint, which
neither waits for nor blocks readers and writers, at most every ``CHECKPOINT_INTERVAL_S`` while
units of work commit. ``sqlite3`` releases the GIL, so the copy runs beside the writers; it is
the same work, though, and on two busy cores its CPU still comes out of the requests.

A writer that begins when the log is fully copied back restarts it from its first frame. Writers
that leave no gap long enough for a pass (group commit under load, a file import's chunks, large
batches) never let it restart, so SQLite's own checkpoint stays on as the bound of the WAL, raised
to ``WAL_BOUND_PAGES`` for connections of a runtime that has this thread: when it comes due it
finds everything but the last half second of commits already copied (~100 ms once per ~60
batches of 1,000 events). A busy answer (another connection or process is checkpointing) is normal
and left to the next pass.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

logger = logging.getLogger("audience.storage")

CHECKPOINT_INTERVAL_S = 0.5
"""Passes start at most this often, the first at once when a commit wakes an idle thread, and
also unasked (for writes that end no unit of work of this runtime; copying nothing costs
microseconds). A pass after every commit copied twice the pages, since consecutive batches
rewrite the same pages (four batches hold half as many distinct pages as frames), for twice the
thread's CPU; every 2 s left ~400 ms to copy for the commit that reaches the bound."""
WAL_BOUND_PAGES = 100_000
"""SQLite's own checkpoint on a runtime with this thread, at ~400 MiB of WAL (the file keeps its
largest size until the last connection closes). At 10,000 every import chunk still paid for its own
copy; at 100,000 one chunk in three does (commits of a 1,000,000-event import: 6 s -> 2 s)."""
STOP_TIMEOUT_S = 30.0
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


@dataclass(frozen=True, slots=True)
class CheckpointPass:
    """What ``PRAGMA wal_checkpoint`` answered: frames in the WAL, and how many are copied back."""

    busy: bool
    wal_frames: int
    checkpointed_frames: int


def sqlite_file(database_url: str) -> Path | None:
    """The file behind a SQLite URL, made absolute now; ``None`` for PostgreSQL and in-memory or URI databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.query.get("uri") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve()


class WalCheckpointer:
    """One thread and one ``sqlite3`` connection of its own, outside SQLAlchemy's pool.

    ``request()`` after each commit; ``stop()`` when the runtime is disposed (idempotent).
    """

    def __init__(self, database: Path, *, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.database = database
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._started_passes = 0
        self._finished_passes = 0
        self._last: CheckpointPass | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def request(self) -> None:
        """A pass as soon as the interval allows, not only at the tick; never blocks the committing thread."""
        self._wake.set()

    def checkpoint_and_wait(self, timeout_s: float = STOP_TIMEOUT_S) -> CheckpointPass | None:
        """The result of a pass that checkpoints after this call; ``None`` if it failed, timed out or was stopped."""
        with self._progress:
            wanted = self._started_passes + 1
            self._wake.set()
            self._progress.wait_for(lambda: self._finished_passes >= wanted or not self.running, timeout_s)
            return self._last if self._finished_passes >= wanted else None

    def stop(self) -> None:
        """Ends the thread after its current pass; its connection is closed on the thread that opened it."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                logger.warning("WAL checkpointer did not stop in time", extra={"where": "wal_checkpointer"})

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            not_before = 0.0
            while not self._stopping.is_set():
                self._wake.wait(self.interval_s)  # a commit, or the tick
                self._stopping.wait(max(0.0, not_before - time.monotonic()))  # commits meanwhile join this pass
                if self._stopping.is_set():
                    break
                self._wake.clear()
                not_before = time.monotonic() + self.interval_s
                with self._progress:
                    self._started_passes += 1
                connection, result = self._pass(connection)
                with self._progress:
                    self._finished_passes += 1
                    self._last = result
                    self._progress.notify_all()
        finally:
            if connection is not None:
                connection.close()
            with self._progress:
                self._progress.notify_all()

    def _pass(self, connection: sqlite3.Connection | None) -> tuple[sqlite3.Connection | None, CheckpointPass | None]:
        """PASSIVE: copy what no reader still needs, without taking a lock a reader or writer waits for.

        The connection never creates the file (``mode=rw``) and never waits (``timeout=0``); after a
        failure it is closed and opened afresh at the next pass.
        """
        if connection is None:
            if not self.database.exists():
                return None, None  # the engine creates it at its first connection
            try:
                connection = sqlite3.connect(f"{self.database.as_uri()}?mode=rw", uri=True, timeout=0)
            except sqlite3.Error as error:
                self._failed(error)
                return None, None
        try:
            busy, wal_frames, checkpointed = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            if getattr(error, "sqlite_errorcode", 0) & 0xFF in _BUSY_CODES:
                return connection, CheckpointPass(busy=True, wal_frames=-1, checkpointed_frames=-1)
            connection.close()
            self._failed(error)
            return None, None
        self._failing = False
        return connection, CheckpointPass(busy=bool(busy), wal_frames=wal_frames, checkpointed_frames=checkpointed)

    def _failed(self, error: sqlite3.Error) -> None:
        """Logged once per run of failures, by SQLite's error name only: a driver message can quote a path."""
        if not self._failing:
            name = getattr(error, "sqlite_errorname", None) or type(error).__name__
            logger.warning(
                "WAL checkpoint failed; retried every pass", extra={"where": "wal_checkpointer", "error_type": name}
            )
        self._failing = True


__all__ = ["CHECKPOINT_INTERVAL_S", "WAL_BOUND_PAGES", "CheckpointPass", "WalCheckpointer", "sqlite_file"]
