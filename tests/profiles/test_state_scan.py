"""Reading the state of a whole population by scanning its tables gives exactly what a read by
subject ids gives (``read_state(scan=True)``, the path segment evaluation, previews and analysts'
distributions take for a population of one partition), on both backends."""

from __future__ import annotations

from datetime import timedelta

from polars.testing import assert_frame_equal
from sqlalchemy import select

from server.profiles.store import read_state
from server.runtime import Runtime
from server.storage.tables import ProfileSummaryRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest
from tests.profiles.states import KEYS, sorted_state

PROFILING = ["analytics", "profiling"]


def test_a_scan_reads_exactly_the_chosen_subjects_state(runtime: Runtime) -> None:
    records = [
        event(
            email=f"scan.{person}@example.org",
            channel=("web", "app")[day % 2],
            topics=["sports/football"] if day % 2 else ["travel"],
            timestamp=NOW - timedelta(days=day, hours=person),
            consent_purposes=PROFILING if person % 4 else ["analytics"],  # every fourth: no state
            **({"event": "purchase", "amount": 10.0 + day, "currency": "EUR"} if day % 3 == 0 else {}),
        )
        for person in range(12)
        for day in range(person + 1)
    ]
    runtime = fixed_clock(runtime)
    assert ingest(runtime, records).rejected == []
    with runtime.sessions() as session:
        everyone = sorted(session.scalars(select(ProfileSummaryRow.subject_id)))
        assert len(everyone) == 9
        for chosen in (everyone, everyone[::2], everyone[:1], []):
            scanned, looked_up = read_state(session, chosen, scan=True), read_state(session, chosen)
            assert scanned.summary.height == len(chosen)
            for name in KEYS:
                assert_frame_equal(getattr(sorted_state(scanned), name), getattr(sorted_state(looked_up), name))
