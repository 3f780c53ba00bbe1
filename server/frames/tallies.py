"""What ingestion tallies per source and day, as ingestion writes it and the data-quality report reads it.

Each pass of ingestion adds its counts to ``ingest_tallies`` (``server.ingest.tallies``), one row
per (source, day, outcome); the report (``server.profiles.quality``) sums them. The outcomes are a
closed vocabulary shared by both, kept here so that profiles never import ingestion: a reject's
outcome is ``rejected:`` followed by its code (``server.ingest.vocabulary.RejectCode``).
Counts only: no subject id, no record, nothing that says whose events they were.
"""

from __future__ import annotations

import enum
from typing import Final

import polars as pl

__all__ = ["REJECTED_PREFIX", "TALLY_SCHEMA", "Outcome", "rejected"]


class Outcome(enum.StrEnum):
    """What became of the records of a pass, beside the rejects (``rejected(code)``)."""

    ACCEPTED = "accepted"  # stored as events
    DUPLICATE = "duplicate"  # judged before (or earlier in the pass): a resend, changed nothing
    MERGE = "merge"  # subjects merged into another (each loser counts one)
    REFUSED_MERGE = "refused_merge"  # a merge the storm breaker refused (identity guardrails)
    IDENTITY_LIMIT = "identity_limit"  # an identifier not linked: its subject had too many already
    NEW_SUBJECT = "new_subject"  # subjects created by the pass


REJECTED_PREFIX: Final = "rejected:"


def rejected(code: str) -> str:
    """The outcome of a record rejected with ``code``."""
    return f"{REJECTED_PREFIX}{code}"


TALLY_SCHEMA: Final = pl.Schema(
    {
        "source": pl.String(),  # the source's stored form: declared label, or its keyed hash
        "day": pl.Int32(),  # the day the pass ran, in days since 1970-01-01 (UTC)
        "outcome": pl.String(),
        "count": pl.Int64(),
    }
)
