"""The demo's segments: every template made and evaluated over the loaded population, granted to the
demo partners by what each is declared for, and made again without harm."""

from __future__ import annotations

from sqlalchemy import delete, select

from server.auth.principal import SYSTEM_ACTOR
from server.demo import load
from server.demo.segments import DEMO_GRANTS, create_demo_segments
from server.profiles.build import run_build
from server.runtime import Runtime
from server.segments import grants
from server.segments.definitions import list_segments
from server.segments.templates import templates
from server.storage.tables import SegmentGrantRow, SegmentRow
from server.taxonomy.taxonomy import taxonomy_for

PEOPLE = 150
SEED = 11


def _load(runtime: Runtime) -> None:
    population = load.generate(runtime, people=PEOPLE, seed=SEED)
    load.load_population(runtime, population)
    load.load_consent_changes(runtime, population)
    load.load_attributes(runtime, population)
    run_build(runtime)


def test_the_demo_makes_every_template_evaluated_and_grants_them_to_its_partners(runtime: Runtime) -> None:
    _load(runtime)

    made = create_demo_segments(runtime)

    with runtime.sessions() as session:
        views = {view.name: view for view in list_segments(session, now=runtime.clock())}
        active = {(g.segment, g.partner, g.purpose) for g in grants.list_grants(session, active_only=True)}
    names = {t.name for t in templates(taxonomy_for(runtime.settings.taxonomy_extra))}
    assert names <= set(views), "every template but the regions, which depend on the data"
    assert any(name.startswith("region-") for name in views), "the most common declared regions"
    assert made.created == len(views)
    assert {view.health.status for view in views.values()} == {"ready"}
    assert views["active-users"].health.member_count > 0
    assert active == set(DEMO_GRANTS)
    assert made.grants == len(DEMO_GRANTS)

    again = create_demo_segments(runtime)
    assert (again.created, again.grants) == (0, 0)


def test_a_demo_database_made_before_segments_gets_them(runtime: Runtime) -> None:
    _load(runtime)
    create_demo_segments(runtime)
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:  # as a database from before segments existed
        unit.session.execute(delete(SegmentGrantRow))
        unit.session.execute(delete(SegmentRow).where(SegmentRow.template == "lifecycle"))

    made = create_demo_segments(runtime)

    assert made.created == 3
    assert made.grants == len(DEMO_GRANTS)
    with runtime.sessions() as session:
        lifecycle = session.scalars(select(SegmentRow.status).where(SegmentRow.template == "lifecycle")).all()
    assert list(lifecycle) == ["ready"] * 3
