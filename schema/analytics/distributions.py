"""Profile distributions for analysts: histograms, quantiles, interest reach and mixes.

Thin: each resolver names its question's inputs and calls one service function in
``server.analytics.distributions``; every count comes back released (k floor, noise, budget).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated

import strawberry
from strawberry.types import Info

from schema.analytics.types import ANALYTICS_READERS, Aggregate, AggregatePayload, payload_of
from schema.context import Context
from schema.errors import DomainError
from server.analytics import distributions
from server.analytics.distributions import MixBy, MixDimension, QuantileAnswer
from server.analytics.release import Answer
from server.runtime import UnitOfWork
from server.settings import Settings
from server.taxonomy.taxonomy import Taxonomy, taxonomy_for

Segment = Annotated[
    str | None, strawberry.argument(description="Only the countable members of this saved segment (by name).")
]
Exact = Annotated[
    bool, strawberry.argument(description="Exact counts, no noise: admins only (EXACT_NOT_PERMITTED otherwise).")
]


@strawberry.enum(name="MixDimension", description="What a profile mix breaks down.")
class MixDimensionInput(enum.Enum):
    LIFECYCLE = MixDimension.LIFECYCLE.value
    VALUE_TIER = MixDimension.VALUE_TIER.value


@strawberry.enum(name="MixBy", description="What a profile mix crosses it with.")
class MixByInput(enum.Enum):
    REGION = MixBy.REGION.value
    AGE_BAND = MixBy.AGE_BAND.value


@strawberry.type(description="A quantile read off the released histogram; null with a reason when it cannot be.")
class FeatureQuantile:
    q: float = strawberry.field(extensions=ANALYTICS_READERS)
    value: float | None = strawberry.field(extensions=ANALYTICS_READERS)
    unavailable: str | None = strawberry.field(
        extensions=ANALYTICS_READERS,
        description="'suppressed': it falls among suppressed bins; 'open_bin': in the last, open-ended bin; "
        "'empty': nobody has a value.",
    )


@strawberry.type
class FeatureQuantilesPayload:
    histogram: Aggregate | None = strawberry.field(
        extensions=ANALYTICS_READERS, description="The released histogram the quantiles were interpolated in."
    )
    quantiles: list[FeatureQuantile] | None = strawberry.field(extensions=ANALYTICS_READERS)
    errors: list[DomainError] = strawberry.field(extensions=ANALYTICS_READERS)


@strawberry.type
class DistributionQueries:
    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="People per value of a profile feature: per band or flag value, or per fixed bin of a number "
        "(the server's bins, never drawn from the data); '(none)' holds those without a value, 'other' the regions "
        "with fewer than k people.",
    )
    async def feature_distribution(
        self,
        info: Info[Context, None],
        feature: str,
        segment: Segment = None,
        exact: Exact = False,
    ) -> AggregatePayload:
        settings, taxonomy = _setup(info)
        return await _released(
            info,
            lambda unit: distributions.feature_distribution(
                unit,
                info.context.caller,
                feature=feature,
                segment=segment,
                taxonomy=taxonomy,
                settings=settings,
                exact=exact,
            ),
        )

    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="Quantiles of a numeric feature, interpolated in its released histogram (never a person's "
        "value); asking them is the same question as featureDistribution.",
    )
    async def feature_quantiles(
        self,
        info: Info[Context, None],
        feature: str,
        quantiles: list[float],
        segment: Segment = None,
        exact: Exact = False,
    ) -> FeatureQuantilesPayload:
        settings, taxonomy = _setup(info)
        found: list[QuantileAnswer] = []

        def compute(unit: UnitOfWork) -> Answer:
            result = distributions.feature_quantiles(
                unit,
                info.context.caller,
                feature=feature,
                segment=segment,
                quantiles=quantiles,
                taxonomy=taxonomy,
                settings=settings,
                exact=exact,
            )
            found.append(result)
            return result.histogram

        payload = await _released(info, compute)
        return FeatureQuantilesPayload(
            histogram=payload.aggregate,
            quantiles=[FeatureQuantile(q=x.q, value=x.value, unavailable=x.reason) for x in found[0].quantiles]
            if found
            else None,
            errors=payload.errors,
        )

    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="Per topic, people whose interest score is at least minScore, snapped down to a grid of 0.05 "
        "(0.51 and 0.54 both ask 0.50), so that two close thresholds cannot single a person out.",
    )
    async def interest_reach(
        self,
        info: Info[Context, None],
        topics: list[str],
        min_score: float,
        segment: Segment = None,
        exact: Exact = False,
    ) -> AggregatePayload:
        settings, taxonomy = _setup(info)
        return await _released(
            info,
            lambda unit: distributions.interest_reach_of(
                unit,
                info.context.caller,
                topics=topics,
                min_score=min_score,
                segment=segment,
                taxonomy=taxonomy,
                settings=settings,
                exact=exact,
            ),
        )

    @strawberry.field(
        extensions=ANALYTICS_READERS,
        description="People per lifecycle stage or value tier and region or age band: cells 'active|FR-IDF'.",
    )
    async def profile_mix(
        self,
        info: Info[Context, None],
        dimension: MixDimensionInput,
        by: MixByInput,
        segment: Segment = None,
        exact: Exact = False,
    ) -> AggregatePayload:
        settings, taxonomy = _setup(info)
        return await _released(
            info,
            lambda unit: distributions.profile_mix_of(
                unit,
                info.context.caller,
                dimension=MixDimension(dimension.value),
                by=MixBy(by.value),
                segment=segment,
                taxonomy=taxonomy,
                settings=settings,
                exact=exact,
            ),
        )


def _setup(info: Info[Context, None]) -> tuple[Settings, Taxonomy]:
    settings = info.context.runtime.settings
    return settings, taxonomy_for(settings.taxonomy_extra)


async def _released(info: Info[Context, None], work: Callable[[UnitOfWork], Answer]) -> AggregatePayload:
    return await payload_of(lambda: info.context.analytics(work))
