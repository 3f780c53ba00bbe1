"""The server's segment worker: drains real-time marks right after commits, sweeps on a schedule.

A thread, like the scheduled purge (``server.retention.schedule``): the work is blocking database
work, and shutdown must be able to stop it between units of work and wait for the one running.

- Wake-ups: every unit of work of this process sets ``Runtime.committed`` when it commits, so a
  batch's marks are drained at once; marks written by another process are found within
  ``AUDIENCE_SEGMENT_POLL_SECONDS``.
- Each round: segments never evaluated (``pending``: just created or changed) get a full
  evaluation, then marks are drained (``server.segments.drain``), then, when due, the sweep
  re-evaluates every segment whose rule changes with time alone (``AUDIENCE_SEGMENT_SWEEP_SECONDS``,
  0: never), and, when due, the aggregates BI tools read are published again
  (``server.analytics.publish``, ``AUDIENCE_BI_PUBLISH_SECONDS``, 0: never; the first round
  publishes, so a fresh deployment has them; a process skips a publish another made within the
  interval). A failed publish keeps the previous rows.

Nothing here ends the server: a failed round is logged by error type and tried again. Log lines
carry counts only.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Final

from server.analytics.publish import publish_when_due
from server.observability.logs import failure_fields
from server.runtime import Runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import Selection, evaluate_population

__all__ = ["SegmentWorker"]

logger = logging.getLogger("audience.segments")
STOP_WAIT_S: Final = 30.0


class SegmentWorker:
    def __init__(self, runtime: Runtime, *, poll_s: float, sweep_s: float, publish_s: float = 0) -> None:
        self._runtime = runtime
        self._poll_s = poll_s
        self._sweep_s = sweep_s
        self._publish_s = publish_s
        self._next_sweep = time.monotonic() + sweep_s
        self._next_publish = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="segment-worker", daemon=True)

    def start(self) -> SegmentWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._runtime.committed.set()
        self._thread.join(timeout=STOP_WAIT_S)
        if self._thread.is_alive():
            logger.warning("segment worker did not stop in time", extra={"where": "segment_worker"})

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._runtime.committed.wait(self._wait_s())
            self._runtime.committed.clear()
            if not self._stopping.is_set():
                self.run_once()

    def run_once(self) -> None:
        """One round, whatever happens to it logged."""
        try:
            pending = evaluate_population(self._runtime, selection=Selection.PENDING)
            drained = drain_marks(self._runtime)
            swept = 0
            if self._sweep_s > 0 and time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self._sweep_s
                swept = evaluate_population(self._runtime, selection=Selection.TIME_DEPENDENT).segments
        except Exception as error:  # noqa: BLE001  (a failed round waits for the next; the server goes on)
            logger.error("segment round failed", extra={"outcome": "failed", **failure_fields(error)})  # noqa: TRY400
            return
        if pending.segments or drained or swept:
            logger.info(
                "segments evaluated",
                extra={"pending": pending.segments, "subjects": drained, "swept": swept},
            )
        if self._publish_s > 0 and time.monotonic() >= self._next_publish:
            self._next_publish = time.monotonic() + self._publish_s
            self._publish()

    def _wait_s(self) -> float:
        """Until the next poll, or sooner when a publish falls due before it."""
        if self._publish_s <= 0:
            return self._poll_s
        return max(0.0, min(self._poll_s, self._next_publish - time.monotonic()))

    def _publish(self) -> None:
        try:
            published = publish_when_due(self._runtime, every=timedelta(seconds=self._publish_s))
        except Exception as error:  # noqa: BLE001  (the previous rows stay; the next one is due in publish_s)
            logger.error("bi publish failed", extra={"outcome": "failed", **failure_fields(error)})  # noqa: TRY400
            return
        if published is None:  # another process published within the interval
            return
        logger.info("bi aggregates published", extra={"aggregates": published.aggregates, "rows": published.rows})
