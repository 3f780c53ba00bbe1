"""The consent gate, in columns.

An event's consent context (the purposes granted when it was collected, and the GPC flag) is a
statement from its source: purposes not listed are not granted, GPC withdraws advertising, and
a partner's event that grants anything also grants sharing with that partner. Statements are
turned into ledger entries only where they change the subject's state. An event is kept only
if some purpose it can serve is granted: by its own statement when it carries one, otherwise
by the subject's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentPurpose, LegalBasis
from privacy.purposes import Purpose
from server.ingest.validate import ROW
from server.ingest.vocabulary import ADVERTISING_EVENT_TYPES
from server.storage.tables import ConsentStateRow

LOOKUP_CHUNK = 5_000
PROCESSING_PURPOSES = [purpose.value for purpose in Purpose]
# An ad event serves advertising only; every other event serves these.
ALWAYS_SERVABLE = [Purpose.ANALYTICS.value, Purpose.PERSONALIZATION.value, Purpose.PROFILING.value]


@dataclass(frozen=True, slots=True)
class GateDecision:
    """``ledger``: changes to append, in ``server.consent.service.LEDGER_SCHEMA``."""

    allowed_rows: pl.Series
    ledger: pl.DataFrame


def statements(rows: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """(row, subject_id, purpose, partner_id, granted, at) for every record that carries consent.

    A statement is dated by its event but never later than ``now``: a sender's clock running
    ahead must not let a grant outrank a withdrawal that really came after it.
    """
    carrying = rows.filter(pl.col("consent_purposes").is_not_null())
    listed = pl.col("consent_purposes")
    at = pl.min_horizontal(pl.col("timestamp"), pl.lit(now, dtype=pl.Datetime("us", "UTC"))).alias("at")
    per_purpose = [
        carrying.select(
            ROW,
            "subject_id",
            pl.lit(purpose).alias("purpose"),
            pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
            (listed.list.contains(purpose) & ~(pl.lit(purpose == Purpose.ADVERTISING.value) & pl.col("gpc"))).alias(
                "granted"
            ),
            at,
        )
        for purpose in PROCESSING_PURPOSES
    ]
    # GPC alone, without a purposes list, still says one thing: no advertising.
    gpc_only = rows.filter(pl.col("consent_purposes").is_null() & pl.col("gpc")).select(
        ROW,
        "subject_id",
        pl.lit(Purpose.ADVERTISING.value).alias("purpose"),
        pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
        pl.lit(value=False).alias("granted"),
        at,
    )
    sharing = carrying.filter(pl.col("partner_id").is_not_null()).select(
        ROW,
        "subject_id",
        pl.lit(ConsentPurpose.SHARING.value).alias("purpose"),
        pl.col("partner_id").cast(pl.Int64),
        (listed.list.len() > 0).alias("granted"),
        at,
    )
    return pl.concat([*per_purpose, gpc_only, sharing])


STATE_SCHEMA = pl.Schema(
    {
        "subject_id": pl.Int64(), "purpose": pl.String(), "partner_id": pl.Int64(), "granted": pl.Boolean(),
        "at": pl.Datetime("us", "UTC"),
    }
)


def current_states_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=STATE_SCHEMA, orient="row")


def current_states(session: Session, subject_ids: list[int]) -> pl.DataFrame:
    found: list[tuple[object, ...]] = []
    for start in range(0, len(subject_ids), LOOKUP_CHUNK):
        chunk = subject_ids[start : start + LOOKUP_CHUNK]
        found.extend(
            tuple(row)
            for row in session.connection().execute(
                select(
                    ConsentStateRow.subject_id,
                    ConsentStateRow.purpose,
                    ConsentStateRow.partner_id,
                    ConsentStateRow.granted,
                    ConsentStateRow.since,
                ).where(ConsentStateRow.subject_id.in_(chunk))
            )
        )
    return current_states_frame(found)


def decide(rows: pl.DataFrame, existing: pl.DataFrame, *, source: str, now: datetime) -> GateDecision:
    """``rows``: resolved records (row, subject_id, event, timestamp, consent_purposes, gpc, partner_id)."""
    said = statements(rows, now)
    keys = ["subject_id", "purpose", "partner_id"]
    timeline = (
        pl.concat(
            [existing.with_columns(row=pl.lit(None, dtype=pl.UInt32)), said.select([*existing.columns, ROW])],
            how="diagonal",
        )
        .sort([*keys, "at"], nulls_last=False)
        .with_columns(previous=pl.col("granted").shift(1).over(keys))
    )
    changes = timeline.filter(
        pl.col(ROW).is_not_null() & (pl.col("granted") != pl.col("previous").fill_null(value=False))
    )
    ledger = changes.select(
        pl.col("subject_id").cast(pl.Int64),
        "purpose",
        pl.col("partner_id").cast(pl.Int64),
        "granted",
        pl.lit(LegalBasis.CONSENT.value).alias("legal_basis"),
        pl.lit(f"event:{source}"[:64]).alias("source"),
        pl.lit("collected").alias("policy_version"),
        pl.col("at").alias("recorded_at"),
    )
    state_after = (
        timeline.sort("at")
        .group_by(keys)
        .agg(pl.col("granted").last())
        .filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted"))
        .group_by("subject_id")
        .agg(pl.col("purpose").alias("granted_purposes"))
    )
    own = (
        said.filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted"))
        .group_by(ROW)
        .agg(pl.col("purpose").alias("own_purposes"))
    )
    servable = (
        pl.when(pl.col("event").is_in(sorted(ADVERTISING_EVENT_TYPES)))
        .then(pl.lit([Purpose.ADVERTISING.value]))
        .otherwise(pl.lit(ALWAYS_SERVABLE))
    )
    judged = (
        rows.join(own, on=ROW, how="left")
        .join(state_after, on="subject_id", how="left")
        .with_columns(
            granted=pl.when(pl.col("consent_purposes").is_not_null())
            .then(pl.col("own_purposes"))
            .otherwise(pl.col("granted_purposes"))
            .fill_null(pl.lit([], dtype=pl.List(pl.String))),
            servable=servable,
        )
        .with_columns(allowed=pl.col("granted").list.set_intersection(pl.col("servable")).list.len() > 0)
    )
    return GateDecision(allowed_rows=judged.filter(pl.col("allowed"))[ROW], ledger=ledger)
