"""A second attacker's look at the request desk (issue #14), on paths the compliance tests do not walk.

Two callers working the same request at once (a double click, a retry after a timeout, two officers):
the one that loses the race must still get a true answer, never an empty export or a report of
changes it did not make. Erasure reaching every scope and fragment; retention and dry runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select, text

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR, Actor
from server.consent.requests import RawIdentifier
from server.ingest.attributes import ATTRIBUTE_SCHEMA, upsert_attributes
from server.ingest.setup import guardrails_from
from server.requests import execution, records
from server.requests.lifecycle import RequestError, RequestErrorCode, RequestKind, RequestStatus
from server.retention.run import run_purge
from server.runtime import Runtime
from server.storage.tables import ErasureReceiptRow
from server.subjects.service import read_pii
from tests.compliance.people import reached, restrict_person, visit
from tests.ingest.batches import NOW, fixed_clock, ingest

OFFICER = Actor(key_id="k-officer", role="compliance")
SECOND = Actor(key_id="k-second", role="compliance")


def _filed(runtime: Runtime, kind: RequestKind, email: str, *, verified: bool = True) -> int:
    with runtime.unit_of_work(OFFICER) as unit:
        request_id = records.file_request(unit, kind=kind, identifier=RawIdentifier(IdentifierKind.EMAIL, email)).id
    if verified:
        with runtime.unit_of_work(OFFICER) as unit:
            records.verify_request(unit, request_id, method="email-challenge", reference="ticket:1")
    return request_id


@contextmanager
def _overtaken_after_begin(monkeypatch: pytest.MonkeyPatch, first: Callable[[], Any]) -> Iterator[list[Any]]:
    """The race, made exact: the losing caller moves the request to ``executing``, and before it does
    the work the winning caller (``first``) runs the whole request to completion."""
    begin = execution._begin
    won: list[Any] = []

    def begin_then_overtaken(*args: Any, **kwargs: Any) -> Any:
        kind = begin(*args, **kwargs)
        if not won:
            monkeypatch.setattr(execution, "_begin", begin)
            won.append(first())
        return kind

    monkeypatch.setattr(execution, "_begin", begin_then_overtaken)
    yield won


def test_an_export_overtaken_by_another_export_still_answers_with_the_document(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit("race.export@example.org", 30), visit("race.export@example.org", 20)])
    request_id = _filed(runtime, RequestKind.ACCESS, "race.export@example.org")

    with _overtaken_after_begin(monkeypatch, lambda: execution.export(runtime, OFFICER, request_id)) as won:
        late = execution.export(runtime, SECOND, request_id)
    (early,) = won
    assert early.document["counts"]["events"] == 2
    assert late.request.status is RequestStatus.COMPLETED
    held = {section: n for section, n in early.document["counts"].items() if section != "accesses"}
    assert {section: late.document["counts"][section] for section in held} == held  # never an empty document
    assert late.document["counts"]["accesses"] > early.document["counts"]["accesses"]  # the first export shows
    assert late.request.outcome["exports"] == 2  # and each export is counted (and audited) on its own


def test_a_rectification_overtaken_by_another_is_never_reported_done_without_its_changes(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = fixed_clock(runtime)
    email = "race.rectify@example.org"
    ingest(runtime, [visit(email, 30)])
    attributes = pl.DataFrame([{"email": email, "first_name": "Ada"}], schema=ATTRIBUTE_SCHEMA)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        upsert_attributes(
            unit, attributes, current_year=NOW.year, rules=unit.kit.rules, guardrails=guardrails_from(runtime.settings)
        )
    request_id = _filed(runtime, RequestKind.RECTIFICATION, email)

    first = lambda: execution.rectify_request(runtime, OFFICER, request_id, {"first_name": "Grace"})  # noqa: E731
    with _overtaken_after_begin(monkeypatch, first), pytest.raises(RequestError) as refused:
        execution.rectify_request(runtime, SECOND, request_id, {"first_name": "Hedy"})
    assert refused.value.code is RequestErrorCode.ALREADY_CLOSED
    (subject,) = reached(runtime, email)
    with runtime.sessions() as session:
        assert read_pii(session, subject, runtime.kit)["first_name"] == "Grace"


def test_an_erasure_overtaken_by_another_answers_completed_with_one_receipt(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit("race.erase@example.org", 30)])
    request_id = _filed(runtime, RequestKind.ERASURE, "race.erase@example.org")

    with _overtaken_after_begin(monkeypatch, lambda: execution.execute(runtime, OFFICER, request_id)) as won:
        late = execution.execute(runtime, SECOND, request_id)
    (early,) = won
    assert late.status is early.status is RequestStatus.COMPLETED
    assert late.outcome == early.outcome
    assert early.outcome["subjects"] == 1
    with runtime.sessions() as session:
        receipts = session.scalar(
            select(func.count()).select_from(ErasureReceiptRow).where(ErasureReceiptRow.request_id == request_id)
        )
    assert receipts == 1


def test_erasures_of_one_request_racing_in_threads_write_one_receipt_and_every_caller_gets_an_answer(
    runtime: Runtime,
) -> None:
    runtime = fixed_clock(runtime)
    ingest(runtime, [visit("race.threads@example.org", 30), visit("race.threads@example.org", 10)])
    request_id = _filed(runtime, RequestKind.ERASURE, "race.threads@example.org")
    start = threading.Barrier(4)
    answers: list[str] = []

    def officer(n: int) -> None:
        start.wait()
        try:
            view = execution.execute(runtime, Actor(key_id=f"k-{n}", role="compliance"), request_id)
            answers.append(view.status.value)
        except RequestError as error:
            answers.append(error.code.value)

    threads = [threading.Thread(target=officer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 4
    assert set(answers) <= {"completed", "ALREADY_CLOSED"}
    assert "completed" in answers
    with runtime.sessions() as session:
        receipts = session.scalars(select(ErasureReceiptRow).where(ErasureReceiptRow.request_id == request_id)).all()
    assert len(receipts) == 1
    assert receipts[0].rows_removed["events"] == 2
    assert reached(runtime, "race.threads@example.org") == []


def test_lifting_a_restriction_after_the_person_was_erased_answers_cleanly(runtime: Runtime) -> None:
    runtime = fixed_clock(runtime)
    email = "held.then.gone@example.org"
    ingest(runtime, [visit(email, 30)])
    restriction = _filed(runtime, RequestKind.RESTRICTION, email)
    assert execution.execute(runtime, OFFICER, restriction).outcome["restricted"] == 1
    export = _filed(runtime, RequestKind.ACCESS, email)
    assert execution.export(runtime, OFFICER, export).document["counts"]["events"] == 1  # restricted: still exported
    erasure = _filed(runtime, RequestKind.ERASURE, email)
    assert execution.execute(runtime, OFFICER, erasure).outcome["subjects"] == 1  # restricted: still erased
    with runtime.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM subject_restrictions")) == 0

    lifted = execution.lift_restriction(runtime, OFFICER, restriction)
    assert lifted.outcome["lifted"] == 0


def test_a_dry_purge_changes_no_row_anywhere_and_the_purge_keeps_identified_and_restricted_people(
    runtime: Runtime,
) -> None:
    long_after = NOW.replace(year=NOW.year + 3)
    old = fixed_clock(runtime)
    ingest(old, [visit("kept.identified@example.org", 30), visit("kept.restricted@example.org", 30)])
    restrict_person(old, "kept.restricted@example.org")
    later = fixed_clock(runtime, long_after)

    before = _every_row(runtime)
    dry = run_purge(later, dry_run=True)
    assert dry.dry_run
    assert _every_row(runtime) == before  # ledger, audit, receipts, everything

    run_purge(later)
    assert reached(runtime, "kept.identified@example.org") != []  # events expire, the person does not
    (restricted,) = reached(runtime, "kept.restricted@example.org")
    with runtime.sessions() as session:
        kept = session.scalar(text("SELECT count(*) FROM events WHERE subject_id = :s"), {"s": restricted})
    assert kept == 1  # Art. 18: the data is kept, not even expired


def _every_row(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import inspect

    with runtime.engine.connect() as connection:
        tables = [name for name in inspect(connection).get_table_names() if name != "alembic_version"]
        return {
            name: sorted((tuple(row) for row in connection.execute(text(f"SELECT * FROM {name}"))), key=repr)
            for name in tables
        }
