"""The segment worker as the server runs it: a commit wakes it, it drains the marks, and two
processes draining at once never open a stay twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from privacy.identifiers import IdentifierKind
from server.jobs.segment_worker import SegmentWorker
from server.runtime import Runtime, build_runtime
from server.segments.drain import drain_marks
from server.segments.evaluate import evaluate_population
from server.segments.rules import Compare, CompareOp
from server.settings import Settings
from server.storage.tables import DerivedRebuildRow, SegmentMembershipRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of
from tests.segments.segment_steps import add_segment, members, segment

EVERYONE = Compare("events_lifetime", CompareOp.GE, 1)


def eventually(condition: Callable[[], bool], *, within_s: float = 60.0) -> bool:
    """Waits for a background thread's work; a bound for a hang, not a measure of speed."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_commit_wakes_the_worker_which_evaluates_new_segments_and_changed_subjects(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    everyone = add_segment(runtime, "everyone", EVERYONE)
    worker = SegmentWorker(runtime, poll_s=3600, sweep_s=0).start()  # only commits wake it
    try:
        assert eventually(lambda: segment(runtime, everyone).status == "ready")
        ingest(runtime, [event(email="q@example.org", consent_purposes=["analytics", "profiling"])])
        quinn = subject_of(runtime, IdentifierKind.EMAIL, "q@example.org")
        assert eventually(lambda: members(runtime, everyone) == {quinn})
    finally:
        worker.stop()


def test_two_processes_draining_at_once_open_each_stay_once(runtime: Runtime, settings: Settings) -> None:
    runtime = fixed_clock(runtime)
    everyone = add_segment(runtime, "everyone", EVERYONE)
    evaluate_population(runtime)
    records = [event(email=f"r{n}@example.org", consent_purposes=["analytics", "profiling"]) for n in range(40)]
    ingest(runtime, records)
    other = fixed_clock(build_runtime(settings, keyring=runtime.keyring), NOW)
    try:
        threads = [threading.Thread(target=drain_marks, args=(side,), kwargs={"limit": 7}) for side in (runtime, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        drain_marks(runtime)  # whatever a skipped round left
    finally:
        other.dispose()
    with runtime.sessions() as session:
        stays = session.scalar(select(func.count()).select_from(SegmentMembershipRow))
        assert session.scalar(select(func.count()).select_from(DerivedRebuildRow)) == 0
    assert stays == len(members(runtime, everyone)) == 40
    assert segment(runtime, everyone).member_count == 40
