"""An attacker who reads the stored segment sketches, or asks for overlaps, after a person left.

A sketch holds hashes of subject ids, so a sketch row built before a person withdrew, was
restricted or was erased would still answer "is this id in the segment", and an estimate from it
would go on counting them. Each probe takes a sketch of the person's segments, makes the change
through the product's own path (the consent service, the restriction service, an erasure request
filed, verified and executed), and checks on both backends that no row built before the change
remains, that the next overlap no longer counts the person, and that the rebuilt rows are exactly
the sketches of the members who remain: the person's hash is in none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import pytest

from privacy.identifiers import IdentifierKind
from privacy.sketches import build, deserialize, hashes_of, serialize
from server.analytics.overlaps import OverlapSegment, estimated_truth, exact_truth
from server.analytics.population import countable_members
from server.analytics.release import Truth
from server.auth.principal import Actor
from server.consent.requests import RawIdentifier
from server.requests import records
from server.requests.execution import execute
from server.requests.lifecycle import RequestKind
from server.runtime import Runtime
from server.storage.arrow_reads import SessionReader
from tests.analytics.conftest import analytics_runtime
from tests.analytics.people import ANALYST, EVERYONE, ODD, REPEAT, email, later, populate, segments, stored_sketches
from tests.analytics.people import subject as subject_of_person
from tests.compliance.people import restrict_person
from tests.profiles.consent_steps import record_profiling

__all__ = ["analytics_runtime"]  # the fixture, shared with tests/analytics

OFFICER: Final = Actor(key_id="k-officer", role="compliance")
TRIPLE: Final = 0
"""Person 0 has three events: in ``everyone``, ``repeat`` and ``odd``, so in the three-way cell."""
ALL_THREE: Final = "everyone&odd&repeat"


def _withdraw(runtime: Runtime, n: int) -> None:
    record_profiling(runtime, email(n), granted=False)


def _restrict(runtime: Runtime, n: int) -> None:
    assert restrict_person(runtime, email(n)) == 1


def _erase(runtime: Runtime, n: int) -> None:
    with runtime.unit_of_work(OFFICER) as unit:
        identifier = RawIdentifier(IdentifierKind.EMAIL, email(n))
        request_id = records.file_request(unit, kind=RequestKind.ERASURE, identifier=identifier).id
    with runtime.unit_of_work(OFFICER) as unit:
        records.verify_request(unit, request_id, method="id-check", reference="ticket:1")
    execute(runtime, OFFICER, request_id)


CHANGES: Final[dict[str, Callable[[Runtime, int], None]]] = {
    "withdraws-profiling": _withdraw,
    "is-restricted": _restrict,
    "is-erased": _erase,
}


def _truths(runtime: Runtime, chosen: list[OverlapSegment]) -> tuple[Truth, Truth]:
    """(exact, estimated); the estimate stores the sketches it rebuilds."""
    with runtime.unit_of_work(ANALYST.actor) as unit:
        return exact_truth(unit.session, chosen), estimated_truth(unit.session, chosen, now=unit.clock())


def _members(runtime: Runtime, segment_id: int) -> list[int]:
    with runtime.sessions() as session:
        return countable_members(SessionReader(session), [segment_id])["subject_id"].to_list()


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_person_who_leaves_leaves_every_stored_sketch_and_the_next_overlap(
    analytics_runtime: Runtime, change: str
) -> None:
    runtime = analytics_runtime
    populate(runtime)
    person = subject_of_person(runtime, TRIPLE)
    [person_hash] = hashes_of(build([person]))
    chosen = segments(runtime, [EVERYONE, REPEAT, ODD])
    exact_before, estimate_before = _truths(runtime, chosen)
    members_before = {segment.id: _members(runtime, segment.id) for segment in chosen}
    built_before = stored_sketches(runtime)
    assert set(built_before) == {segment.id for segment in chosen}
    for sketch, _members_count in built_before.values():
        assert person_hash in hashes_of(deserialize(sketch)), "the probe starts from sketches holding the person"

    CHANGES[change](later(runtime, 5), TRIPLE)

    left = stored_sketches(runtime)
    assert not set(left.items()) & set(built_before.items()), "no sketch built before the change remains"
    exact_after, estimate_after = _truths(runtime, chosen)
    assert (exact_after.cells[ALL_THREE], exact_after.total) == (
        exact_before.cells[ALL_THREE] - 1,
        exact_before.total - 1,
    )
    assert (estimate_after.cells, estimate_after.total) == (exact_after.cells, exact_after.total)
    assert estimate_before.cells[ALL_THREE] - estimate_after.cells[ALL_THREE] == 1

    rebuilt = stored_sketches(runtime)
    assert set(rebuilt) == {segment.id for segment in chosen}
    for segment in chosen:
        remaining = [subject for subject in members_before[segment.id] if subject != person]
        assert len(remaining) == len(members_before[segment.id]) - 1
        sketch, members = rebuilt[segment.id]
        assert sketch == serialize(build(remaining)), "the stored sketch is that of the members who remain"
        assert members == len(remaining)
        assert person_hash not in hashes_of(deserialize(sketch))
