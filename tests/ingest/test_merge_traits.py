"""Coarse traits at a merge: the winner keeps what it has and takes from its losers, in the order
they were merged, only what it lacks; a loser keeps none."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from privacy.identifiers import IdentifierKind
from server.auth.principal import SYSTEM_ACTOR
from server.identity.merge import merge_subjects
from server.runtime import Runtime
from server.storage.tables import SubjectTraitsRow
from tests.ingest.batches import NOW, event, fixed_clock, ingest, subject_of

Traits = tuple[str | None, str | None, str | None]


def subjects(runtime: Runtime, count: int) -> list[int]:
    ingest(fixed_clock(runtime), [event(anonymous_id=f"device-{n}") for n in range(count)])
    found = [subject_of(runtime, IdentifierKind.DEVICE_ID, f"device-{n}") for n in range(count)]
    return [s for s in found if s is not None]


def give_traits(runtime: Runtime, traits: dict[int, Traits]) -> None:
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        unit.session.add_all(
            SubjectTraitsRow(
                subject_id=subject,
                age_band=age,
                gender=gender,
                region=region,
                updated_at=NOW - timedelta(days=n + 1),
            )
            for n, (subject, (age, gender, region)) in enumerate(traits.items())
        )


def traits_of(runtime: Runtime) -> dict[int, tuple[Traits, int]]:
    """Each subject's traits and how many days before ``NOW`` they were updated."""
    with runtime.sessions() as session:
        return {
            row.subject_id: ((row.age_band, row.gender, row.region), (NOW - row.updated_at).days)
            for row in session.scalars(select(SubjectTraitsRow))
        }


def test_a_winner_fills_only_its_gaps_from_its_losers_in_merge_order(runtime: Runtime) -> None:
    a, b, c, d, e, f = subjects(runtime, 6)
    give_traits(
        runtime,
        {
            a: ("25-34", None, None),
            b: ("35-44", "female", None),
            c: (None, "male", "FR-IDF"),
            e: ("45-54", None, "DE-BE"),
            f: (None, None, None),
        },
    )
    with fixed_clock(runtime, NOW + timedelta(seconds=5)).unit_of_work(SYSTEM_ACTOR) as unit:
        assert merge_subjects(unit, [(a, b), (d, e), (a, c)], reason="test") == 3
    assert traits_of(runtime) == {
        a: (("25-34", "female", "FR-IDF"), 1),  # its own age band and date; b's gender before c's
        d: (("45-54", None, "DE-BE"), 4),  # it had none: e's, with e's date
        f: ((None, None, None), 5),  # not merged: untouched
    }
