"""Segments as marketers and admins see them: definitions, health, k-suppressed counts, grants."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.access.types import PurposeType
from schema.errors import DomainError
from schema.permissions import requires
from schema.segments.problem_types import RuleProblemType
from server.analytics.marketing import ReleasedPreview
from server.analytics.release import Figure
from server.auth.principal import Role
from server.segments.definitions import SegmentView
from server.segments.grants import GrantView

SEGMENT_READERS = requires(Role.MARKETER, Role.ADMIN)
MARKETER = requires(Role.MARKETER)


@strawberry.type(
    description="A count with noise (docs/analytics.md), or null with the reason it is not shown (below the "
    "anonymity threshold k, or the key's budget spent)."
)
class Count:
    value: int | None = strawberry.field(extensions=SEGMENT_READERS)
    suppressed: str | None = strawberry.field(
        extensions=SEGMENT_READERS,
        description="'below_k': fewer than k people; 'complement': hidden so another hidden cell cannot be "
        "recovered from the total; 'budget_exhausted': this key may be given no new answer this period.",
    )
    noise_scale: float | None = strawberry.field(
        extensions=SEGMENT_READERS,
        description="Scale of the discrete Laplace noise on the value; null when none.",
    )


def to_count(figure: Figure, noise_scale: float | None) -> Count:
    return Count(
        value=figure.value, suppressed=figure.reason, noise_scale=None if figure.value is None else noise_scale
    )


@strawberry.type(description="How a segment's evaluation stands: nothing stops updating silently.")
class SegmentHealth:
    status: str = strawberry.field(
        extensions=SEGMENT_READERS, description="pending (never evaluated), ready, or failed (last good members kept)."
    )
    stale: bool = strawberry.field(
        extensions=SEGMENT_READERS, description="Its members are not those of its current rule and data."
    )
    stuck: bool = strawberry.field(extensions=SEGMENT_READERS, description="An evaluation has run far too long.")
    last_evaluated_at: datetime | None = strawberry.field(extensions=SEGMENT_READERS)
    lag_seconds: float | None = strawberry.field(
        extensions=SEGMENT_READERS, description="Seconds since the last evaluation that succeeded."
    )
    last_duration_ms: int | None = strawberry.field(extensions=SEGMENT_READERS)
    last_error_code: str | None = strawberry.field(extensions=SEGMENT_READERS)
    last_error_at: datetime | None = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="A segment's definition and health; its members are never shown here.")
class Segment:
    name: str = strawberry.field(extensions=SEGMENT_READERS)
    description: str | None = strawberry.field(extensions=SEGMENT_READERS)
    rule_text: str = strawberry.field(extensions=SEGMENT_READERS, description="The rule in the text DSL.")
    template: str | None = strawberry.field(extensions=SEGMENT_READERS)
    version: int = strawberry.field(extensions=SEGMENT_READERS)
    depends_on: list[str] = strawberry.field(extensions=SEGMENT_READERS)
    time_dependent: bool = strawberry.field(
        extensions=SEGMENT_READERS, description="Re-evaluated by the scheduled sweep: time alone changes it."
    )
    member_count: Count = strawberry.field(extensions=SEGMENT_READERS)
    health: SegmentHealth = strawberry.field(extensions=SEGMENT_READERS)
    created_at: datetime = strawberry.field(extensions=SEGMENT_READERS)
    updated_at: datetime = strawberry.field(extensions=SEGMENT_READERS)


def to_segment(view: SegmentView, member_count: Count) -> Segment:
    health = view.health
    return Segment(
        name=view.name,
        description=view.description,
        rule_text=view.rule_text,
        template=view.template,
        version=view.version,
        depends_on=list(view.depends_on),
        time_dependent=view.time_dependent,
        member_count=member_count,
        health=SegmentHealth(
            status=health.status,
            stale=health.stale,
            stuck=health.stuck,
            last_evaluated_at=health.last_evaluated_at,
            lag_seconds=None if health.lag is None else health.lag.total_seconds(),
            last_duration_ms=health.last_duration_ms,
            last_error_code=health.last_error_code,
            last_error_at=health.last_error_at,
        ),
        created_at=view.created_at,
        updated_at=view.updated_at,
    )


@strawberry.type
class SegmentPayload:
    segment: Segment | None = strawberry.field(extensions=SEGMENT_READERS)
    errors: list[DomainError] = strawberry.field(extensions=SEGMENT_READERS)
    problems: list[RuleProblemType] = strawberry.field(
        extensions=SEGMENT_READERS, description="What is wrong with the rule, each with its position."
    )


@strawberry.type
class DeletePayload:
    deleted: bool = strawberry.field(extensions=SEGMENT_READERS)
    errors: list[DomainError] = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="One cell of a breakdown.")
class BreakdownCell:
    value: str = strawberry.field(extensions=SEGMENT_READERS)
    count: Count = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="Counts by one feature, with primary and secondary suppression below k.")
class Breakdown:
    feature: str = strawberry.field(extensions=SEGMENT_READERS)
    cells: list[BreakdownCell] = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="What a rule would select now: sizes only, never members.")
class SegmentPreview:
    size: Count = strawberry.field(extensions=SEGMENT_READERS)
    breakdowns: list[Breakdown] = strawberry.field(extensions=SEGMENT_READERS)
    as_of: datetime = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type
class PreviewPayload:
    preview: SegmentPreview | None = strawberry.field(extensions=SEGMENT_READERS)
    errors: list[DomainError] = strawberry.field(extensions=SEGMENT_READERS)
    problems: list[RuleProblemType] = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="A segment granted to a partner for one purpose.")
class SegmentGrant:
    id: int = strawberry.field(extensions=SEGMENT_READERS)
    segment: str = strawberry.field(extensions=SEGMENT_READERS)
    partner: str = strawberry.field(extensions=SEGMENT_READERS)
    purpose: PurposeType = strawberry.field(extensions=SEGMENT_READERS)  # type: ignore[valid-type]
    granted_at: datetime = strawberry.field(extensions=SEGMENT_READERS)
    revoked_at: datetime | None = strawberry.field(extensions=SEGMENT_READERS)


def to_grant(view: GrantView) -> SegmentGrant:
    return SegmentGrant(
        id=view.id,
        segment=view.segment,
        partner=view.partner,
        purpose=view.purpose,
        granted_at=view.granted_at,
        revoked_at=view.revoked_at,
    )


@strawberry.type
class GrantPayload:
    grant: SegmentGrant | None = strawberry.field(extensions=SEGMENT_READERS)
    errors: list[DomainError] = strawberry.field(extensions=SEGMENT_READERS)


@strawberry.type(description="A ready-made segment from the marketing literature.")
class SegmentTemplate:
    name: str = strawberry.field(extensions=SEGMENT_READERS)
    family: str = strawberry.field(extensions=SEGMENT_READERS)
    description: str = strawberry.field(extensions=SEGMENT_READERS)
    rule_text: str = strawberry.field(extensions=SEGMENT_READERS)


def to_preview(preview: ReleasedPreview) -> SegmentPreview:
    """Every count as released: the floor, secondary suppression in each breakdown, noise."""
    return SegmentPreview(
        size=to_count(preview.size.total, preview.size.noise_scale),
        breakdowns=[
            Breakdown(
                feature=feature,
                cells=[
                    BreakdownCell(value=value, count=to_count(shown, answer.noise_scale))
                    for value, shown in answer.cells.items()
                ],
            )
            for feature, answer in preview.breakdowns.items()
        ],
        as_of=preview.size.as_of,
    )
