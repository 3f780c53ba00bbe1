"""Read what the features of some subjects are computed from: their state, traits and identities.

One query per table for any number of subjects, straight into frames (``server.storage.lookup``),
in the caller's transaction. Traits arrive as the coarse bands they are stored as; identities as
kind and scope only, never a pseudonym.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from sqlalchemy.orm import Session

from server.frames.subjects import IDENTITY_SCHEMA, TRAIT_SCHEMA
from server.profiles.features import FeatureInputs
from server.profiles.store import events_of, read_state
from server.storage.lookup import frame_where_in
from server.storage.tables import IdentityRow, SubjectTraitsRow

__all__ = ["feature_inputs", "identities_of", "traits_of"]


def traits_of(session: Session, subject_ids: Sequence[int]) -> pl.DataFrame:
    return frame_where_in(
        session,
        f"SELECT subject_id, age_band, region FROM {SubjectTraitsRow.__tablename__} WHERE subject_id {{in}}",
        sorted(set(subject_ids)),
        TRAIT_SCHEMA,
    )


def identities_of(session: Session, subject_ids: Sequence[int]) -> pl.DataFrame:
    return frame_where_in(
        session,
        f"SELECT subject_id, kind, partner_id FROM {IdentityRow.__tablename__} WHERE subject_id {{in}}",
        sorted(set(subject_ids)),
        IDENTITY_SCHEMA,
    )


def feature_inputs(
    session: Session, subject_ids: Sequence[int], *, explained: bool = False, everyone: bool = False
) -> FeatureInputs:
    """``explained``: also read the subjects' events, which interest explanations are counted from
    (a profile read of one person; not for populations). ``everyone``: the subjects are the whole
    population that holds state, so the state tables are scanned rather than looked up
    (``read_state``)."""
    return FeatureInputs.of(
        read_state(session, subject_ids, scan=everyone),
        traits=traits_of(session, subject_ids),
        identities=identities_of(session, subject_ids),
        events=events_of(session, subject_ids) if explained else None,
    )
