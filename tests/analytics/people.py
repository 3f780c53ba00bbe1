"""A population for the analytics tests, made through the product's own paths: people ingested
with every consent (profiles folded in real time), segments saved and evaluated over everyone.

``EVERYONE`` holds all ``SIZE`` people; ``REPEAT`` the first ``REPEATERS`` (two events or more);
``ODD`` those with other than two events: the ``TRIPLES`` first (three each) and the single-event
rest; ``HALF`` a random bucket of about half of everyone. So ``REPEAT`` lies inside ``EVERYONE``,
and ``repeat&odd`` is a cell of ``TRIPLES`` people, below k.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from server.analytics.overlaps import OverlapSegment, overlap_segments
from server.auth.principal import Principal, Role
from server.runtime import Runtime
from server.segments.evaluate import evaluate_population
from server.segments.rules import Compare, CompareOp, RandomBucket
from server.storage.tables import SegmentSketchRow
from tests.compliance.people import visit
from tests.ingest.batches import fixed_clock, ingest, subject_of
from tests.segments.segment_steps import add_segment

SIZE: Final = 180
REPEATERS: Final = 120
TRIPLES: Final = 5
EVERYONE: Final = "everyone"
REPEAT: Final = "repeat"
ODD: Final = "odd"
HALF: Final = "half"
ANALYST: Final = Principal(key_id="k-analyst", role=Role.ANALYST)
ADMIN: Final = Principal(key_id="k-admin", role=Role.ADMIN)


def email(n: int) -> str:
    return f"person.{n}@example.org"


def populate(runtime: Runtime) -> dict[str, int]:
    """Everyone ingested and evaluated; returns the segments' ids by name. ``runtime``: a fixed clock."""
    firsts = [visit(email(n), 50) for n in range(SIZE)]
    seconds = [visit(email(n), 40) for n in range(REPEATERS)]
    thirds = [visit(email(n), 30) for n in range(TRIPLES)]
    assert ingest(runtime, [*firsts, *seconds, *thirds]).accepted == SIZE + REPEATERS + TRIPLES
    ids = {
        EVERYONE: add_segment(runtime, EVERYONE, Compare("events_lifetime", CompareOp.GE, 1)),
        REPEAT: add_segment(runtime, REPEAT, Compare("events_lifetime", CompareOp.GE, 2)),
        ODD: add_segment(runtime, ODD, Compare("events_lifetime", CompareOp.NE, 2)),
        HALF: add_segment(runtime, HALF, RandomBucket("analytics-half", 2, 0, 1)),
    }
    evaluate_population(runtime)
    return ids


def later(runtime: Runtime, minutes: int) -> Runtime:
    """The same runtime, ``minutes`` past the population's clock (a change after it)."""
    return fixed_clock(runtime, runtime.clock() + timedelta(minutes=minutes))


def subject(runtime: Runtime, n: int) -> int:
    found = subject_of(runtime, IdentifierKind.EMAIL, email(n))
    assert found is not None
    return found


def segments(runtime: Runtime, names: Sequence[str]) -> list[OverlapSegment]:
    with runtime.sessions() as session:
        return overlap_segments(session, names)


def stored_sketches(runtime: Runtime) -> dict[int, tuple[bytes, int]]:
    """Every stored sketch row as it is: (bytes, members) by segment id."""
    with runtime.sessions() as session:
        rows = session.execute(select(SegmentSketchRow.segment_id, SegmentSketchRow.sketch, SegmentSketchRow.members))
        return {int(row.segment_id): (bytes(row.sketch), int(row.members)) for row in rows}
