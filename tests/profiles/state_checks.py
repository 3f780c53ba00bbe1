"""The promise both evaluators keep: each consenting subject's stored state is exactly the state of
its stored events, and nobody else has any.

Compared frame by frame, sorted, with interest scores to a relative 1e-9 (they are sums of
exponentials, added in another order by each path); everything else exactly.
"""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import select

from server.profiles import store
from server.profiles.state import ProfileState, state_of
from server.runtime import Runtime
from server.storage.tables import EventRow, ProfileSummaryRow

SCORE_TOLERANCE = 1e-9
KEYS = {
    "daily": ["subject_id", "day", "type", "channel"],
    "summary": ["subject_id"],
    "interests": ["subject_id", "topic"],
}


def stored_and_expected(runtime: Runtime) -> tuple[ProfileState, ProfileState]:
    with runtime.sessions() as session:
        with_events = sorted(set(session.scalars(select(EventRow.subject_id))))
        with_state = sorted(set(session.scalars(select(ProfileSummaryRow.subject_id))))
        granted = store.consenting(session, with_events)
        stored = store.read_state(session, sorted(set(with_state) | set(with_events)))
        expected = state_of(store.events_of(session, granted).lazy(), runtime.profiles.interests)
    return stored, expected


def assert_state_follows_events(runtime: Runtime, *, anyone: bool = True) -> None:
    """``anyone``: the check needs consenting subjects with events, or it could not fail."""
    stored, expected = stored_and_expected(runtime)
    assert expected.summary.height > 0 or not anyone, "no consenting subject with events to check"
    assert_states_equal(stored, expected)


def assert_states_equal(left: ProfileState, right: ProfileState) -> None:
    for name, keys in KEYS.items():
        ours, theirs = (getattr(state, name).sort(keys) for state in (left, right))
        if name == "interests":
            assert_frame_equal(ours, theirs, check_exact=False, rel_tol=SCORE_TOLERANCE, abs_tol=0)
        else:
            assert_frame_equal(ours, theirs, check_exact=True)


def state_rows(runtime: Runtime) -> dict[str, pl.DataFrame]:
    stored, _expected = stored_and_expected(runtime)
    return {name: getattr(stored, name).sort(keys) for name, keys in KEYS.items()}
