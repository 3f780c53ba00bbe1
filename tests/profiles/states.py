"""Reading and comparing the stored profile state in the profile tests.

Frames are compared with floats to a relative tolerance of 1e-9: interest accumulators folded
batch by batch and computed in one pass differ only by rounding.
"""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal
from sqlalchemy import delete, select

from server.auth.principal import SYSTEM_ACTOR
from server.profiles.partitions import Partition
from server.profiles.state import ProfileState
from server.profiles.store import STATE_TABLES, read_state
from server.runtime import Runtime
from server.storage.tables import SubjectRow

TOLERANCE = 1e-9
KEYS = {
    "daily": ["subject_id", "day", "type", "channel"],
    "summary": ["subject_id"],
    "interests": ["subject_id", "topic"],
}


def sorted_state(state: ProfileState) -> ProfileState:
    return ProfileState(**{name: getattr(state, name).sort(keys) for name, keys in KEYS.items()})


def stored_state(runtime: Runtime) -> ProfileState:
    """Every subject's stored state, each frame in key order."""
    with runtime.sessions() as session:
        return sorted_state(read_state(session, list(session.scalars(select(SubjectRow.id)))))


def in_partition(state: ProfileState, partition: Partition) -> ProfileState:
    return ProfileState(**{name: getattr(state, name).filter(partition.holds(pl.col("subject_id"))) for name in KEYS})


def only(state: ProfileState, subject_ids: list[int]) -> ProfileState:
    return ProfileState(**{name: getattr(state, name).filter(pl.col("subject_id").is_in(subject_ids)) for name in KEYS})


def assert_same_state(left: ProfileState, right: ProfileState) -> None:
    for name in KEYS:
        assert_frame_equal(getattr(left, name), getattr(right, name), rel_tol=TOLERANCE, abs_tol=0.0)


def rows(state: ProfileState) -> int:
    return sum(getattr(state, name).height for name in KEYS)


def remove_all_state(runtime: Runtime) -> None:
    """As for events stored before profiles existed."""
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        for model, _schema in STATE_TABLES:
            unit.session.execute(delete(model))
