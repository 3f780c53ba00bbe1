"""Hand-built events turned into profile state by the same functions ingestion folds with.

The pure feature tests start here: events as (subject, type, channel, time, topics, amount), the
state of them (``server.profiles.state.state_of``), and the inputs the features read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from server.frames.profiles import STATE_EVENT_SCHEMA
from server.frames.subjects import IDENTITY_SCHEMA, TRAIT_SCHEMA
from server.profiles.config import InterestConfig, ProfileConfig
from server.profiles.features import FeatureInputs
from server.profiles.state import state_of
from server.taxonomy.taxonomy import Taxonomy, load_taxonomy

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TAXONOMY: Taxonomy = load_taxonomy()
CONFIG = ProfileConfig(interests=InterestConfig.from_taxonomy(TAXONOMY))

Event = tuple[int, str, str, datetime, str | None, float | None]


def days_ago(days: int, *, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """A time on the UTC day ``days`` before ``AS_OF``'s day."""
    day = AS_OF.replace(hour=0, minute=0, second=0) - timedelta(days=days)
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


def inputs_of(
    events: Sequence[Event],
    *,
    config: ProfileConfig = CONFIG,
    traits: Sequence[tuple[int, str | None, str | None]] = (),
    identities: Sequence[tuple[int, str, int | None]] = (),
) -> FeatureInputs:
    frame = pl.DataFrame(list(events), schema=STATE_EVENT_SCHEMA, orient="row")
    return FeatureInputs.of(
        state_of(frame.lazy(), config.interests),
        traits=pl.DataFrame(list(traits), schema=TRAIT_SCHEMA, orient="row"),
        identities=pl.DataFrame(list(identities), schema=IDENTITY_SCHEMA, orient="row"),
        events=frame,
    )
