"""The server's own purge: a thread that runs ``run_purge`` at start-up and then every interval.

A thread rather than an asyncio task: the purge is blocking database work, and a thread can be
told to stop between partitions and joined when the server shuts down, so the engine is never
disposed under a running partition. Each server process runs its own; on PostgreSQL they take
turns on an advisory lock and a process that finds it held skips that round (``PurgeRunning``),
so one purges at a time. On SQLite each process purges on its own schedule; the deletes are
idempotent, so a second process finds nothing left.

Nothing here ends the server: a failed run (the database away, a full disk) is logged by error
type and tried again at the next interval. Log lines carry counts only.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from server.observability.logs import failure_fields
from server.retention.report import PurgeReport
from server.retention.run import PurgeRunning, run_purge
from server.runtime import Runtime

__all__ = ["ScheduledPurge"]

logger = logging.getLogger("audience.retention")
STOP_WAIT_S: Final = 30.0
"""How long shutdown waits for a partition in progress (it commits or rolls back whole either way)."""


class ScheduledPurge:
    def __init__(self, runtime: Runtime, *, interval_s: float) -> None:
        self._runtime = runtime
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention-purge", daemon=True)

    def start(self) -> ScheduledPurge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=STOP_WAIT_S)
        if self._thread.is_alive():
            logger.warning("retention purge did not stop in time", extra={"where": "retention_purge"})

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self._interval_s)

    def run_once(self) -> PurgeReport | None:
        """One run, whatever happens to it logged; ``None`` when skipped or failed."""
        try:
            report = run_purge(self._runtime, keep_going=lambda: not self._stopping.is_set())
        except PurgeRunning:
            logger.info("retention purge skipped: another process is purging", extra={"outcome": "skipped"})
            return None
        except Exception as error:  # noqa: BLE001  (any failure waits for the next interval; the server goes on)
            # Not ``logger.exception``: the driver's text can quote a stored value (``failure_fields``).
            logger.error("retention purge failed", extra={"outcome": "failed", **failure_fields(error)})  # noqa: TRY400
            return None
        outcome = "done" if report.complete else "stopped"
        logger.info("retention purge", extra={"outcome": outcome, "counts": report.totals()})
        return report
