"""A merge or a split leaves both subjects marked for a rebuild of their derived data, once each,
and the builders' reader drains the marks oldest first without losing one made meanwhile."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.identity.rebuilds import RebuildMark, RebuildReason, clear_marks, mark_for_rebuild, take_marks
from server.identity.split import split_merge
from server.ingest.setup import guardrails_from
from server.runtime import Runtime
from server.storage.tables import DerivedRebuildRow, IdentityMergeRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of

DEVICES = ("dev-a", "dev-b", "dev-c")


def seconds(n: int) -> datetime:
    return NOW + timedelta(seconds=n)


def at(runtime: Runtime, n: int) -> Runtime:
    return fixed_clock(runtime, seconds(n))


def devices(runtime: Runtime, *names: str) -> list[int]:
    """One anonymous subject per device, oldest first, so the first is every merge's winner."""
    for n, name in enumerate(names):
        ingest(at(runtime, n), [event(anonymous_id=name)])
    found = [subject_of(runtime, IdentifierKind.DEVICE_ID, name) for name in names]
    assert None not in found
    return [subject for subject in found if subject is not None]


def log_in(runtime: Runtime, device: str, *, at_second: int) -> int:
    """A login on ``device`` with the customer id every device shares; returns the merges it caused."""
    return ingest(
        at(runtime, at_second), [event(user_id="cust-ana", anonymous_id=device, consent_purposes=None)]
    ).merges


def one_email_on_every_device() -> list[dict[str, Any]]:
    return [event(anonymous_id=name, email="ana@example.org", consent_purposes=None) for name in DEVICES]


def marks(runtime: Runtime) -> dict[int, tuple[str, datetime]]:
    """The marks identity changes left: every stored event also marks its subject for the segment
    evaluator (reason ``events``), which a merge's own mark of a subject takes precedence over."""
    with runtime.sessions() as session:
        rows = session.scalars(select(DerivedRebuildRow).where(DerivedRebuildRow.reason != "events")).all()
    return {row.subject_id: (row.reason, row.marked_at) for row in rows}


def test_a_merge_marks_the_winner_and_the_loser(runtime: Runtime) -> None:
    phone, laptop = devices(runtime, "phone-1", "laptop-2")
    assert log_in(runtime, "phone-1", at_second=5) == 0
    assert marks(runtime) == {}, "linking a new identifier is no merge"
    assert log_in(runtime, "laptop-2", at_second=6) == 1
    assert marks(runtime) == {phone: ("merge", seconds(6)), laptop: ("merge", seconds(6))}


def test_a_batch_merging_three_subjects_marks_each_once(runtime: Runtime) -> None:
    a, b, c = devices(runtime, *DEVICES)
    assert ingest(at(runtime, 5), one_email_on_every_device()).merges == 2
    assert marks(runtime) == {subject: ("merge", seconds(5)) for subject in (a, b, c)}


def test_a_refused_merge_marks_nothing(runtime: Runtime) -> None:
    devices(runtime, *DEVICES)
    guardrails = guardrails_from(runtime.settings.model_copy(update={"max_subjects_per_merge": 2}))
    result = ingest(at(runtime, 5), one_email_on_every_device(), guardrails=guardrails)
    assert (result.refused_merges, result.merges) == (1, 0)
    assert marks(runtime) == {}


def test_a_second_merge_marks_the_winner_again_later(runtime: Runtime) -> None:
    a, b, c = devices(runtime, *DEVICES)
    log_in(runtime, "dev-a", at_second=5)
    assert log_in(runtime, "dev-b", at_second=6) == 1
    assert log_in(runtime, "dev-c", at_second=9) == 1
    assert marks(runtime) == {a: ("merge", seconds(9)), b: ("merge", seconds(6)), c: ("merge", seconds(9))}


def test_a_split_marks_both_subjects(runtime: Runtime) -> None:
    phone, laptop = devices(runtime, "phone-1", "laptop-2")
    log_in(runtime, "phone-1", at_second=5)
    log_in(runtime, "laptop-2", at_second=6)
    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id)).all()
    with at(runtime, 20).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, merge_id)
    assert marks(runtime) == {phone: ("split", seconds(20)), laptop: ("split", seconds(20))}


def test_marks_are_taken_oldest_first_and_cleared_exactly(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        mark_for_rebuild(unit.session, [30, 10], reason=RebuildReason.MERGE, now=seconds(2))
        mark_for_rebuild(unit.session, [20], reason=RebuildReason.SPLIT, now=seconds(1))
        mark_for_rebuild(unit.session, [40], reason=RebuildReason.MERGE, now=seconds(3))
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        taken = take_marks(unit.session, limit=3)
    assert taken == [
        RebuildMark(20, RebuildReason.SPLIT, seconds(1)),
        RebuildMark(10, RebuildReason.MERGE, seconds(2)),
        RebuildMark(30, RebuildReason.MERGE, seconds(2)),
    ]
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        clear_marks(unit.session, taken)
    assert marks(runtime) == {40: ("merge", seconds(3))}


def test_a_subject_marked_again_between_take_and_clear_stays_marked(runtime: Runtime) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        mark_for_rebuild(unit.session, [10, 20], reason=RebuildReason.MERGE, now=seconds(1))
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        taken = take_marks(unit.session, limit=10)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        mark_for_rebuild(unit.session, [20], reason=RebuildReason.SPLIT, now=seconds(5))
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        clear_marks(unit.session, taken)
    assert marks(runtime) == {20: ("split", seconds(5))}, "the rebuild that was running predates the split"
