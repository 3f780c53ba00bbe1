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
from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentPurpose, LegalBasis
from privacy.purposes import Purpose
from server.consent import service as consent
from server.ingest.validate import ROW
from server.ingest.vocabulary import ADVERTISING_EVENT_TYPES

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
    ahead must not let a grant outrank a withdrawal that really came after it. A partner speaks
    only for sharing with itself; its records never move the person's own purposes, except that
    a GPC signal it relays still withdraws advertising (a signal can only restrict).
    """
    first_party = pl.col("partner_id").is_null()
    carrying = rows.filter(pl.col("consent_purposes").is_not_null())
    at = pl.min_horizontal(pl.col("timestamp"), pl.lit(now, dtype=pl.Datetime("us", "UTC"))).alias("at")
    # One row per (record, purpose): the purposes list cross the processing purposes, in columns.
    per_purpose = (
        carrying.filter(first_party)
        .select(ROW, "subject_id", "consent_purposes", "gpc", at)
        .join(pl.DataFrame({"purpose": PROCESSING_PURPOSES}), how="cross")
        .select(
            ROW,
            "subject_id",
            "purpose",
            pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
            (
                pl.col("consent_purposes").list.contains(pl.col("purpose"))
                & ~((pl.col("purpose") == Purpose.ADVERTISING.value) & pl.col("gpc"))
            ).alias("granted"),
            "at",
        )
    )
    # GPC without a first-party purposes list still says one thing: no advertising.
    gpc_only = rows.filter(pl.col("gpc") & (pl.col("consent_purposes").is_null() | ~first_party)).select(
        ROW,
        "subject_id",
        pl.lit(Purpose.ADVERTISING.value).alias("purpose"),
        pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
        pl.lit(value=False).alias("granted"),
        at,
    )
    sharing = carrying.filter(~first_party).select(
        ROW,
        "subject_id",
        pl.lit(ConsentPurpose.SHARING.value).alias("purpose"),
        pl.col("partner_id").cast(pl.Int64),
        (pl.col("consent_purposes").list.len() > 0).alias("granted"),
        at,
    )
    return pl.concat([per_purpose, gpc_only, sharing])


# The stored state as the gate reads it: ``since`` is called ``at``, like a statement's time.
STATE_SCHEMA = pl.Schema(
    {"at" if name == "since" else name: dtype for name, dtype in consent.STATE_FRAME_SCHEMA.items()}
)


def current_states_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=STATE_SCHEMA, orient="row")


def current_states(session: Session, subject_ids: list[int]) -> pl.DataFrame:
    """The stored state in the gate's shape (``STATE_SCHEMA``: ``since`` is called ``at`` here)."""
    return consent.state_frame(session, subject_ids).rename({"since": "at"})


def decide(rows: pl.DataFrame, existing: pl.DataFrame, *, source: str, now: datetime) -> GateDecision:
    """``rows``: resolved records (row, subject_id, event, timestamp, consent_purposes, gpc, partner_id).

    A record that carries a statement is judged on it alone, so the verdict does not depend on
    what other records taught us first: a first-party statement where it is not older than the
    stored state (the latest word wins), a partner's statement as what that partner attests (it
    is recorded as sharing with that partner only, never as the person's own purposes). A record
    without a statement is judged on the stored state, and a partner's needs sharing with it.
    """
    said = statements(rows, now)
    keys = ["subject_id", "purpose", "partner_id"]
    stated = pl.col(ROW).is_not_null()
    # Ties are broken by meaning, never by row order: at the same time the stored state comes
    # first (a statement is not older than it, the rule of ``effective`` below), and of several
    # statements only the most restrictive stays, so a grant and a withdrawal made at the same
    # moment leave the withdrawal in either order, and the ledger never two entries of one time.
    timeline = (
        pl.concat(
            [existing.with_columns(row=pl.lit(None, dtype=pl.UInt32)), said.select([*existing.columns, ROW])],
            how="diagonal",
        )
        .sort([*keys, "at", stated, pl.col("granted").not_()])
        .filter(~(stated & pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(-1)) for c in [*keys, "at"])))
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
    latest = timeline.group_by(keys, maintain_order=True).agg(pl.col("granted").last())  # sorted by at
    state_after = (
        latest.filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted"))
        .group_by("subject_id")
        .agg(pl.col("purpose").alias("granted_purposes"))
    )
    shared_after = latest.filter(pl.col("purpose") == ConsentPurpose.SHARING.value).select(
        "subject_id", "partner_id", pl.col("granted").alias("shared")
    )
    stored = existing.select(*keys, pl.col("at").alias("stored_at"), pl.col("granted").alias("stored_granted"))
    effective = said.join(stored, on=keys, how="left").with_columns(
        granted=pl.when(pl.col("stored_at").is_null() | (pl.col("at") >= pl.col("stored_at")))
        .then(pl.col("granted"))
        .otherwise(pl.col("stored_granted"))
    )
    own = (
        effective.filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted"))
        .group_by(ROW)
        .agg(pl.col("purpose").alias("own_purposes"))
    )
    own_sharing = effective.filter(pl.col("purpose") == ConsentPurpose.SHARING.value).select(
        ROW, pl.col("granted").alias("own_shared")
    )
    servable = (
        pl.when(pl.col("event").is_in(sorted(ADVERTISING_EVENT_TYPES)))
        .then(pl.lit([Purpose.ADVERTISING.value]))
        .otherwise(pl.lit(ALWAYS_SERVABLE))
    )
    first_party_statement = pl.col("consent_purposes").is_not_null() & pl.col("partner_id").is_null()
    partner_statement = pl.col("consent_purposes").is_not_null() & pl.col("partner_id").is_not_null()
    attested = pl.col("consent_purposes").list.set_difference(
        pl.when(pl.col("gpc")).then(pl.lit([Purpose.ADVERTISING.value])).otherwise(pl.lit([], dtype=pl.List(pl.String)))
    )
    judged = (
        rows.join(own, on=ROW, how="left")
        .join(own_sharing, on=ROW, how="left")
        .join(state_after, on="subject_id", how="left")
        .join(shared_after, on=["subject_id", "partner_id"], how="left")
        .with_columns(
            granted=pl.when(first_party_statement)
            .then(pl.col("own_purposes"))
            .when(partner_statement)
            .then(attested)
            .otherwise(pl.col("granted_purposes"))
            .fill_null(pl.lit([], dtype=pl.List(pl.String))),
            servable=servable,
            sharing_ok=pl.when(pl.col("partner_id").is_null())
            .then(pl.lit(value=True))
            .otherwise(pl.coalesce("own_shared", "shared", pl.lit(value=False))),
        )
        .with_columns(
            allowed=(pl.col("granted").list.set_intersection(pl.col("servable")).list.len() > 0) & pl.col("sharing_ok")
        )
    )
    return GateDecision(allowed_rows=judged.filter(pl.col("allowed"))[ROW], ledger=ledger)
