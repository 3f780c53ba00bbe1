"""Columns of what a profile reads about a subject beside its state: declared traits and identities.

Profiles, the batch build and segments read these in bulk (``server.profiles.inputs``) and hand
them to the feature functions (``server.profiles.features``). Neither holds anything that names a
person: traits are coarse bands, identities are only counted by kind and scope.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["IDENTITY_SCHEMA", "TRAIT_SCHEMA"]

TRAIT_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "age_band": pl.String(),  # "25-34", never a birth date or year
        "region": pl.String(),  # a country code with at most a short subdivision: "FR", "FR-IDF"
    }
)

IDENTITY_SCHEMA: Final = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "kind": pl.String(),  # an ``IdentifierKind`` value
        "partner_id": pl.Int64(),  # null: our own link; a partner's links are its own and not counted
    }
)
