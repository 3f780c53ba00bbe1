"""A merge never makes a profile vanish or count an event twice, and a split gives each side the
profile of its own events: the stored state is compared with the state computed afresh from the
events each subject holds afterwards (the batch build's definition)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.identity.split import split_merge
from server.profiles.state import ProfileState, state_of
from server.profiles.store import events_of, read_state
from server.runtime import Runtime
from server.storage.tables import IdentityMergeRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of

PROFILING = ["analytics", "profiling"]
NOT_PROFILING = ["analytics"]
EV = "automotive/auto-type/electric-vehicles"
CARS = "automotive/car-culture"


def at(runtime: Runtime, seconds: int) -> Runtime:
    """Batches a few seconds apart, so the device seen first is every merge's winner."""
    return fixed_clock(runtime, NOW + timedelta(seconds=seconds))


def browsing(device: str, *, purposes: list[str], days_ago: int) -> list[dict[str, Any]]:
    """Four events over two days: views and a purchase, with topics, so every state table gets rows."""
    when = NOW - timedelta(days=days_ago)
    return [
        event(anonymous_id=device, consent_purposes=purposes, timestamp=when, topics=[EV]),
        event(anonymous_id=device, consent_purposes=purposes, timestamp=when + timedelta(hours=1), topics=[CARS]),
        event(
            anonymous_id=device,
            consent_purposes=purposes,
            event="purchase",
            amount=25.0,
            currency="EUR",
            timestamp=when + timedelta(days=1),
            topics=[EV],
        ),
        event(anonymous_id=device, consent_purposes=purposes, channel="app", timestamp=when + timedelta(days=1)),
    ]


def device(runtime: Runtime, name: str) -> int:
    subject = subject_of(runtime, IdentifierKind.DEVICE_ID, name)
    assert subject is not None
    return subject


def two_devices(runtime: Runtime, *, phone: list[str], laptop: list[str]) -> tuple[int, int]:
    assert ingest(at(runtime, 0), browsing("phone-1", purposes=phone, days_ago=6)).accepted == 4
    assert ingest(at(runtime, 1), browsing("laptop-2", purposes=laptop, days_ago=3)).accepted == 4
    return device(runtime, "phone-1"), device(runtime, "laptop-2")


def log_in_on_both(runtime: Runtime, *, purposes: list[str] | None = PROFILING) -> None:
    """Two logins with one customer id: the second joins the laptop into the phone's subject and
    states ``purposes``; the first states nothing, so neither side's consent changes before the merge."""
    first = ingest(at(runtime, 2), [event(user_id="cust-ana", anonymous_id="phone-1", consent_purposes=None)])
    second = ingest(at(runtime, 3), [event(user_id="cust-ana", anonymous_id="laptop-2", consent_purposes=purposes)])
    assert (first.accepted, first.merges, second.accepted, second.merges) == (1, 0, 1, 1)


def stored(runtime: Runtime, subject_id: int) -> ProfileState:
    with runtime.sessions() as session:
        return read_state(session, [subject_id])


def from_events(runtime: Runtime, subject_id: int) -> tuple[ProfileState, int]:
    """The state of every event ``subject_id`` holds, computed afresh, and how many events that is."""
    with runtime.sessions() as session:
        events = events_of(session, [subject_id])
    return state_of(events.lazy(), runtime.profiles.interests), events.height


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [name for name, dtype in frame.schema.items() if not dtype.is_float()]
    return frame.sort(keys)


def assert_profile_of_its_events(runtime: Runtime, subject_id: int, *, events: int) -> None:
    """Stored state == the state of the subject's events; each event counted once."""
    state = stored(runtime, subject_id)
    expected, held = from_events(runtime, subject_id)
    assert held == events
    assert state.daily["events"].sum() == events, "every event counted, none twice"
    for name in ("daily", "summary", "interests"):
        assert_frame_equal(
            canonical(getattr(state, name)), canonical(getattr(expected, name)), check_exact=False, rel_tol=1e-9
        )


def assert_no_profile(runtime: Runtime, subject_id: int) -> None:
    state = stored(runtime, subject_id)
    assert [f.height for f in (state.daily, state.summary, state.interests)] == [0, 0, 0]


def test_a_merge_gives_the_winner_the_profile_of_both_and_the_loser_none(runtime: Runtime) -> None:
    phone, laptop = two_devices(runtime, phone=PROFILING, laptop=PROFILING)
    assert_profile_of_its_events(runtime, phone, events=4)
    assert_profile_of_its_events(runtime, laptop, events=4)
    log_in_on_both(runtime)
    assert_profile_of_its_events(runtime, phone, events=10)
    assert_no_profile(runtime, laptop)


@pytest.mark.parametrize("consented", ["winner", "loser"])
def test_a_merge_where_only_one_side_had_a_profile_covers_every_event(runtime: Runtime, consented: str) -> None:
    """The other side's events were never folded (no ``profiling`` then); once the merged person
    grants it, the profile covers them too, not only the side that had one."""
    phone, laptop = two_devices(
        runtime,
        phone=PROFILING if consented == "winner" else NOT_PROFILING,
        laptop=PROFILING if consented == "loser" else NOT_PROFILING,
    )
    assert_profile_of_its_events(runtime, phone if consented == "winner" else laptop, events=4)
    assert_no_profile(runtime, laptop if consented == "winner" else phone)
    log_in_on_both(runtime)
    assert_profile_of_its_events(runtime, phone, events=10)
    assert_no_profile(runtime, laptop)


def test_a_merged_person_without_profiling_consent_keeps_no_partial_profile(runtime: Runtime) -> None:
    """Merged consent is the most restrictive: the laptop never granted ``profiling``, so the
    merged subject does not either, and the phone's half of a profile does not survive."""
    phone, laptop = two_devices(runtime, phone=PROFILING, laptop=NOT_PROFILING)
    log_in_on_both(runtime, purposes=None)
    assert_no_profile(runtime, phone)
    assert_no_profile(runtime, laptop)


def test_a_split_recomputes_each_side_from_its_own_events(runtime: Runtime) -> None:
    phone, laptop = two_devices(runtime, phone=PROFILING, laptop=PROFILING)
    log_in_on_both(runtime)
    with runtime.sessions() as session:
        [merge_id] = session.scalars(select(IdentityMergeRow.id)).all()
    with at(runtime, 10).unit_of_work(SYSTEM_ACTOR) as unit:
        split_merge(unit, merge_id)
    assert_profile_of_its_events(runtime, phone, events=6)  # its own and both logins (first seen on it)
    assert_no_profile(runtime, laptop)  # a split-off subject starts without consent (opt-in)
    ingest(at(runtime, 11), [event(anonymous_id="laptop-2", consent_purposes=PROFILING)])
    assert_profile_of_its_events(runtime, laptop, events=5)  # its own from before the merge, and this one
