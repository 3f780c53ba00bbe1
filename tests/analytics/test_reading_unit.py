"""An analyst's answer reads for long (every countable profile) and writes one ledger row: the read
must not hold the writers' turn, or on SQLite every ingest would wait for it."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from server.analytics.questions import Question
from server.analytics.release import Truth
from server.analytics.service import answer
from server.auth.principal import SYSTEM_ACTOR, Principal, Role
from server.runtime import Runtime
from server.storage.tables import AnalyticsReleaseRow, PartnerRow

ANALYST = Principal("k_reader", Role.ANALYST)


def test_a_write_goes_through_while_an_answer_is_reading_and_the_answer_is_recorded_after(runtime: Runtime) -> None:
    written = threading.Event()

    def ingest_meanwhile() -> None:
        with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
            unit.session.add(PartnerRow(name="meanwhile", purposes=[], created_at=unit.clock()))
        written.set()

    def truth_of(session: object) -> Truth:
        writer = threading.Thread(target=ingest_meanwhile)
        writer.start()
        writer.join(timeout=10)
        assert written.is_set(), "a writer waited for the analyst's read"
        return Truth(123)

    with runtime.reading(ANALYST.actor) as unit:
        given = answer(unit, ANALYST, Question.of("test", name="long read"), truth_of, settings=runtime.settings)
    assert given.total.value is not None
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AnalyticsReleaseRow)) == 1, "recorded, committed"
