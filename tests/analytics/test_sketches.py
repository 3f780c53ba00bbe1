"""Stored segment sketches follow the segments' members: an evaluation that moves someone in or out
of a segment, a new rule and a deleted segment take the sketch away in their own transaction; new
events that change no membership leave it. Privacy-level changes (consent, restriction, erasure)
are probed in tests/privacy/test_sketch_probes.py."""

from __future__ import annotations

from sqlalchemy import delete

from privacy.sketches import build, deserialize, hashes_of, serialize
from server.analytics.overlaps import estimated_truth
from server.analytics.sketches import sketch_of
from server.auth.principal import SYSTEM_ACTOR
from server.runtime import Runtime
from server.segments import definitions
from server.segments.drain import drain_marks
from server.segments.rules import Compare, CompareOp
from server.storage.tables import SegmentSketchRow
from server.taxonomy.taxonomy import taxonomy_for
from tests.analytics.people import (
    ANALYST,
    EVERYONE,
    HALF,
    ODD,
    REPEAT,
    SIZE,
    later,
    populate,
    segments,
    stored_sketches,
)
from tests.compliance.people import visit
from tests.ingest.batches import ingest


def _sketch_all(runtime: Runtime) -> dict[int, tuple[bytes, int]]:
    with runtime.unit_of_work(ANALYST.actor) as unit:
        estimated_truth(unit.session, segments(runtime, [EVERYONE, REPEAT, ODD, HALF]), now=unit.clock())
    return stored_sketches(runtime)


def test_a_missing_sketch_is_rebuilt_from_the_members_and_kept(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    ids = populate(runtime)
    with runtime.unit_of_work(ANALYST.actor) as unit:
        sketch = sketch_of(unit.session, ids[EVERYONE], now=unit.clock())
    assert sketch.get_estimate() == SIZE
    stored, members = stored_sketches(runtime)[ids[EVERYONE]]
    assert (stored, members) == (serialize(sketch), SIZE)
    with runtime.unit_of_work(ANALYST.actor) as unit:
        again = sketch_of(unit.session, ids[EVERYONE], now=unit.clock())
    assert hashes_of(again) == hashes_of(deserialize(stored))


def test_an_evaluation_that_moves_people_drops_the_sketches_it_changes_and_only_those(
    analytics_runtime: Runtime,
) -> None:
    runtime = analytics_runtime
    ids = populate(runtime)
    before = _sketch_all(runtime)
    # The last person had one event: a second moves them out of ``odd`` and into ``repeat``.
    assert ingest(later(runtime, 1), [visit(f"person.{SIZE - 1}@example.org", 1)]).accepted == 1
    assert stored_sketches(runtime) == before, "new events change nobody's membership before an evaluation"
    drain_marks(later(runtime, 2))
    after = stored_sketches(runtime)
    assert set(after) == {ids[EVERYONE], ids[HALF]}
    assert after == {segment: before[segment] for segment in after}


def test_new_events_that_change_no_membership_keep_the_sketches(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    populate(runtime)
    before = _sketch_all(runtime)
    # Person 0 had three events: a fourth keeps them in everyone, repeat and odd.
    assert ingest(later(runtime, 1), [visit("person.0@example.org", 1)]).accepted == 1
    drain_marks(later(runtime, 2))
    assert stored_sketches(runtime) == before


def test_a_new_rule_drops_the_sketch_and_a_deleted_segment_takes_it_along(analytics_runtime: Runtime) -> None:
    runtime = analytics_runtime
    ids = populate(runtime)
    _sketch_all(runtime)
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        definitions.update_segment(unit, REPEAT, taxonomy=taxonomy, rule=Compare("events_lifetime", CompareOp.GE, 3))
    assert ids[REPEAT] not in stored_sketches(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        definitions.update_segment(unit, ODD, taxonomy=taxonomy, description="people without two events")
    assert ids[ODD] in stored_sketches(runtime), "a new description is not a new set"
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        definitions.delete_segment(unit, HALF)
    assert ids[HALF] not in stored_sketches(runtime)


def test_a_sketch_built_from_ids_is_the_one_stored(analytics_runtime: Runtime) -> None:
    """The stored bytes are the library's compact form of exactly the members: equal sets, equal bytes."""
    runtime = analytics_runtime
    ids = populate(runtime)
    stored = _sketch_all(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.execute(delete(SegmentSketchRow))
    rebuilt = _sketch_all(runtime)
    assert rebuilt == stored
    assert deserialize(rebuilt[ids[EVERYONE]][0]).get_estimate() == build(range(SIZE)).get_estimate()
