"""The person's profile as the server computes it from the stored state: features, and every
interest with its explanation.

The state tables themselves are exported as rows (the registry's ``profile`` section); these are
what the server derives from them, with the very functions a profile read and the batch build
call (``server.profiles.features``), for all of the person's subjects in one pass. Every interest
is listed, not only the top few a profile read shows. Not gated on ``profiling`` consent as a read
is: the export shows what is held, and without that consent no state is held to compute from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from server.profiles.config import ProfileConfig
from server.profiles.features import features, top_interests
from server.profiles.inputs import feature_inputs
from server.profiles.tiers import latest_cut_points
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["computed_profiles"]


def computed_profiles(
    session: Session, subject_ids: Sequence[int], *, config: ProfileConfig, taxonomy: Taxonomy, now: datetime
) -> pl.DataFrame:
    """One row per subject with a profile as of ``now``: ``as_of``, every feature
    (``FEATURE_SCHEMA``), and ``interests``, a list ranked strongest first (``INTEREST_SCHEMA``
    without the subject id), each with ``counts`` by event type and ``last_seen``."""
    if not subject_ids:
        return pl.DataFrame()
    every_topic = dataclasses.replace(config, top_k=max(taxonomy.frame.height, 1))
    inputs = feature_inputs(session, subject_ids, explained=True)
    row, interests = pl.collect_all(
        [
            features(inputs, as_of=now, config=every_topic, cut_points=latest_cut_points(session)),
            top_interests(inputs, as_of=now, config=every_topic, taxonomy=taxonomy),
        ]
    )
    ranked = interests.group_by("subject_id").agg(
        pl.struct(pl.exclude("subject_id")).sort_by("rank").alias("interests")
    )
    return (
        row.join(ranked, on="subject_id", how="left")
        .with_columns(pl.col("interests").fill_null([]))
        .select("subject_id", pl.lit(now).alias("as_of"), pl.exclude("subject_id"))
        .sort("subject_id")
    )
