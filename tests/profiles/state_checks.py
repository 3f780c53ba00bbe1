"""The promise both evaluators keep: each consenting subject's stored state is exactly the state of
its stored events, and nobody else has any (compared as ``tests.profiles.states`` compares).
"""

from __future__ import annotations

from sqlalchemy import select

from server.profiles import store
from server.profiles.state import ProfileState, state_of
from server.runtime import Runtime
from server.storage.tables import EventRow, ProfileSummaryRow
from tests.profiles.states import assert_same_state, sorted_state


def stored_and_expected(runtime: Runtime) -> tuple[ProfileState, ProfileState]:
    with runtime.sessions() as session:
        with_events = sorted(set(session.scalars(select(EventRow.subject_id))))
        with_state = sorted(set(session.scalars(select(ProfileSummaryRow.subject_id))))
        granted = store.consenting(session, with_events)
        stored = store.read_state(session, sorted(set(with_state) | set(with_events)))
        expected = state_of(store.events_of(session, granted).lazy(), runtime.profiles.interests)
    return sorted_state(stored), sorted_state(expected)


def assert_state_follows_events(runtime: Runtime, *, anyone: bool = True) -> None:
    """``anyone``: the check needs consenting subjects with events, or it could not fail."""
    stored, expected = stored_and_expected(runtime)
    assert expected.summary.height > 0 or not anyone, "no consenting subject with events to check"
    assert_same_state(stored, expected)
