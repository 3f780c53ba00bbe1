"""The demo's segments: every template, evaluated, and a few granted to the demo partners.

The partners' grants follow what each is declared for (``DEMO_PARTNERS``): ``partner-alpha``
(advertising) gets lifecycle, value and interest segments; ``partner-beta`` (personalization)
gets interest segments. An ``analytics`` grant of an interest segment would be refused (interest
scores are profiling), which is the point the README tour makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select

from privacy.purposes import Purpose
from server.auth.principal import SYSTEM_ACTOR
from server.demo.load import ensure_partners
from server.runtime import Runtime
from server.segments import definitions, grants
from server.segments.evaluate import evaluate_population
from server.segments.templates import templates
from server.storage.tables import SegmentRow, SubjectTraitsRow
from server.taxonomy.taxonomy import taxonomy_for

__all__ = ["DEMO_GRANTS", "DemoSegments", "create_demo_segments"]

DEMO_REGIONS: Final = 4
"""Region templates for the most common declared regions."""
DEMO_GRANTS: Final[tuple[tuple[str, str, Purpose], ...]] = (
    ("active-users", "partner-alpha", Purpose.ADVERTISING),
    ("high-value", "partner-alpha", Purpose.ADVERTISING),
    ("interest-sports", "partner-alpha", Purpose.ADVERTISING),
    ("interest-travel", "partner-alpha", Purpose.ADVERTISING),
    ("interest-travel", "partner-beta", Purpose.PERSONALIZATION),
    ("interest-food-and-drink", "partner-beta", Purpose.PERSONALIZATION),
)


@dataclass(frozen=True, slots=True)
class DemoSegments:
    created: int
    grants: int
    evaluation_ms: int


def _common_regions(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        region = SubjectTraitsRow.region
        rows = session.execute(
            select(region, func.count()).where(region.is_not(None)).group_by(region).order_by(func.count().desc())
        ).all()
    return [str(code) for code, _count in rows[:DEMO_REGIONS]]


def create_demo_segments(runtime: Runtime) -> DemoSegments:
    """Idempotent: templates already there are left as they are, grants already active too."""
    ensure_partners(runtime)
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    created = 0
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        existing = set(unit.session.scalars(select(SegmentRow.name)))
        for template in templates(taxonomy, regions=_common_regions(runtime)):
            if template.name in existing:
                continue
            definitions.create_segment(
                unit,
                name=template.name,
                rule=template.rule,
                taxonomy=taxonomy,
                description=template.description,
                template=template.family,
            )
            created += 1
    run = evaluate_population(runtime)
    granted = 0
    with runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        active = {(g.segment, g.partner, g.purpose) for g in grants.list_grants(unit.session, active_only=True)}
        for segment, partner, purpose in DEMO_GRANTS:
            if (segment, partner, purpose) not in active:
                grants.grant_segment(unit, segment=segment, partner=partner, purpose=purpose)
                granted += 1
    return DemoSegments(created=created, grants=granted, evaluation_ms=run.duration_ms)
