"""The consent gate, in columns.

An event's consent context (the purposes granted when it was collected, and the GPC flag) is a
statement from its source: purposes not listed are not granted, GPC withdraws advertising. A
partner speaks only for sharing with itself: its statement grants that sharing where it lists a
purpose the partner declared, and its GPC signal withdraws it. Statements are
turned into ledger entries only where they change the subject's state. An event is kept only
if some purpose it can serve is granted: by its own statement when it carries one, otherwise
by the subject's state. A subject under a processing restriction (Art. 18) is refused whatever
its consent says, exactly as if it had none: the restriction shows in no answer.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from privacy.consent import NO_PARTNER, ConsentPurpose, LegalBasis
from privacy.purposes import Purpose
from server.consent import service as consent
from server.frames.events import ROW
from server.identity.resolve import Merge
from server.ingest.purposes import DECLARED, NO_PURPOSES, servable
from server.ingest.validate import utc_literal
from server.storage.restrictions import restricted_among

PROCESSING_PURPOSES = [purpose.value for purpose in Purpose]
# What a consent state is kept for: one subject, one purpose, one partner (``NO_PARTNER`` but for sharing).
KEYS = ["subject_id", "purpose", "partner_id"]


@dataclass(frozen=True, slots=True)
class GateDecision:
    """``ledger``: changes to append, in ``server.consent.service.LEDGER_SCHEMA``."""

    allowed_rows: pl.Series
    ledger: pl.DataFrame


def statements(rows: pl.LazyFrame, now: datetime) -> pl.LazyFrame:
    """(row, subject_id, purpose, partner_id, granted, at) for every record that carries consent.

    A statement is dated by its event but never later than ``now``: a sender's clock running
    ahead must not let a grant outrank a withdrawal that really came after it. A partner speaks
    only for sharing with itself; its records never move the person's own purposes, and a GPC
    signal it relays withdraws sharing with it, not our own advertising. Purposes it did not
    declare count for nothing: a statement listing only those does not grant sharing.
    """
    first_party = pl.col("partner_id").is_null()
    gpc = pl.col("gpc").fill_null(value=False)
    carrying = rows.filter(pl.col("consent_purposes").is_not_null())
    at = pl.min_horizontal(pl.col("timestamp"), utc_literal(now)).alias("at")
    # One row per (record, purpose): the purposes list cross the processing purposes, in columns.
    per_purpose = (
        carrying.filter(first_party)
        .select(ROW, "subject_id", "consent_purposes", "gpc", at)
        .join(pl.LazyFrame({"purpose": PROCESSING_PURPOSES}), how="cross")
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
    gpc_only = rows.filter(first_party & gpc & pl.col("consent_purposes").is_null()).select(
        ROW,
        "subject_id",
        pl.lit(Purpose.ADVERTISING.value).alias("purpose"),
        pl.lit(NO_PARTNER, dtype=pl.Int64).alias("partner_id"),
        pl.lit(value=False).alias("granted"),
        at,
    )
    declared_listed = pl.col("consent_purposes").list.set_intersection(pl.col(DECLARED)).list.len().fill_null(0)
    sharing = rows.filter(~first_party & (pl.col("consent_purposes").is_not_null() | gpc)).select(
        ROW,
        "subject_id",
        pl.lit(ConsentPurpose.SHARING.value).alias("purpose"),
        pl.col("partner_id").cast(pl.Int64),
        ((declared_listed > 0) & ~gpc).alias("granted"),
        at,
    )
    return pl.concat([per_purpose, gpc_only, sharing])


# The stored state as the gate reads it: ``since`` is called ``at``, like a statement's time.
STATE_SCHEMA = pl.Schema(
    {"at" if name == "since" else name: dtype for name, dtype in consent.STATE_FRAME_SCHEMA.items()}
)


def current_states_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=STATE_SCHEMA, orient="row")


def restricted_subjects(session: Session, subject_ids: list[int], merges: Sequence[Merge]) -> set[int]:
    """Those of ``subject_ids`` under a restriction, and the winner of each merge one side of which is."""
    sides = [s for m in merges for s in (m.winner, *m.losers)]
    restricted = restricted_among(session, [*subject_ids, *sides])
    return restricted | {m.winner for m in merges if restricted.intersection((m.winner, *m.losers))}


def current_states(session: Session, subject_ids: list[int]) -> pl.DataFrame:
    """The stored state in the gate's shape (``STATE_SCHEMA``: ``since`` is called ``at`` here)."""
    return consent.state_frame(session, subject_ids).rename({"since": "at"})


def decide(
    rows: pl.DataFrame,
    existing: pl.DataFrame,
    *,
    source: str,
    now: datetime,
    restricted: Collection[int] = (),
) -> GateDecision:
    """``rows``: resolved records (row, subject_id, event, timestamp, consent_purposes, gpc, partner_id).

    A record that carries a statement is judged on it alone, so the verdict does not depend on
    what other records taught us first: a first-party statement where it is not older than the
    stored state (the latest word wins), a partner's statement as what that partner attests (it
    is recorded as sharing with that partner only, never as the person's own purposes). A record
    without a statement is judged on the stored state, and a partner's needs sharing with it.
    The records of ``restricted`` subjects are refused; their statements still reach the ledger
    (a withdrawal made while restricted counts once the restriction is lifted).
    """
    records, stored = rows.lazy(), existing.lazy()
    # Cached: each is read by both answers, and must be computed once for both.
    said = statements(records, now).cache()
    timeline = _timeline(stored, said).cache()
    latest = _latest(timeline)
    judged = (
        records.join(_own_verdicts(said, stored), on=ROW, how="left", maintain_order="left")
        .join(_granted_after(latest), on="subject_id", how="left", maintain_order="left")
        .join(_shared_after(latest), on=["subject_id", "partner_id"], how="left", maintain_order="left")
    )
    # Both answers in one query, collected once: on a batch of 1,000 events the fixed cost of
    # each eager step outweighs its work.
    allowed, ledger = pl.collect_all(
        [
            judged.filter(_allowed() & ~pl.col("subject_id").is_in(sorted(restricted))).select(ROW),
            _ledger(timeline, source),
        ],
        engine="in-memory",
    )
    return GateDecision(allowed_rows=allowed[ROW], ledger=ledger)


def _timeline(stored: pl.LazyFrame, said: pl.LazyFrame) -> pl.LazyFrame:
    """Stored states and statements sorted by key and time, each with the value it follows (``previous``).

    Sorted, a key's entries are adjacent: its first, its last and each one's predecessor are found
    by comparing neighbours, which costs less than grouping.
    """
    stated = pl.col(ROW).is_not_null()
    # Ties are broken by meaning, never by row order: at the same time the stored state comes
    # first (a statement is not older than it, the rule of ``_own_verdicts``), and of several
    # statements only the most restrictive stays, so a grant and a withdrawal made at the same
    # moment leave the withdrawal in either order, and the ledger never two entries of one time.
    return (
        pl.concat(
            [stored.with_columns(row=pl.lit(None, dtype=pl.UInt32)), said.select([*STATE_SCHEMA.names(), ROW])],
            how="diagonal",
        )
        .sort([*KEYS, "at", stated, pl.col("granted").not_()])
        .filter(~(stated & _same_as_next([*KEYS, "at"])))
        .with_columns(previous=pl.when(_same_as_previous(KEYS)).then(pl.col("granted").shift(1)))
    )


def _same_as_next(columns: list[str]) -> pl.Expr:
    """The next row has the same ``columns``: in a frame sorted by them, it is of the same group."""
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(-1)) for c in columns)


def _same_as_previous(columns: list[str]) -> pl.Expr:
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in columns)


def _latest(timeline: pl.LazyFrame) -> pl.LazyFrame:
    """(subject_id, purpose, partner_id, granted) once the batch is in: the last entry of each key."""
    return timeline.filter(~_same_as_next(KEYS)).select(*KEYS, "granted")


def _ledger(timeline: pl.LazyFrame, source: str) -> pl.LazyFrame:
    """The statements that change the state they follow, as ledger entries."""
    changes = timeline.filter(
        pl.col(ROW).is_not_null() & (pl.col("granted") != pl.col("previous").fill_null(value=False))
    )
    return changes.select(
        pl.col("subject_id").cast(pl.Int64),
        "purpose",
        pl.col("partner_id").cast(pl.Int64),
        "granted",
        pl.lit(LegalBasis.CONSENT.value).alias("legal_basis"),
        pl.lit(f"event:{source}"[:64]).alias("source"),
        pl.lit("collected").alias("policy_version"),
        pl.col("at").alias("recorded_at"),
    )


def _granted_after(latest: pl.LazyFrame) -> pl.LazyFrame:
    """(subject_id, granted_purposes): the person's own purposes granted once the batch is in."""
    return (
        latest.filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted"))
        .group_by("subject_id")
        .agg(pl.col("purpose").alias("granted_purposes"))
    )


def _shared_after(latest: pl.LazyFrame) -> pl.LazyFrame:
    """(subject_id, partner_id, shared): sharing with each partner once the batch is in."""
    return latest.filter(pl.col("purpose") == ConsentPurpose.SHARING.value).select(
        "subject_id", "partner_id", pl.col("granted").alias("shared")
    )


def _own_verdicts(said: pl.LazyFrame, stored: pl.LazyFrame) -> pl.LazyFrame:
    """(row, own_purposes, own_shared): what a record's statements grant, unless the stored state is newer."""
    stored_state = stored.select(*KEYS, pl.col("at").alias("stored_at"), pl.col("granted").alias("stored_granted"))
    effective = said.join(stored_state, on=KEYS, how="left").with_columns(
        granted=pl.when(pl.col("stored_at").is_null() | (pl.col("at") >= pl.col("stored_at")))
        .then(pl.col("granted"))
        .otherwise(pl.col("stored_granted"))
    )
    return effective.group_by(ROW).agg(
        own_purposes=pl.col("purpose").filter(pl.col("partner_id") == NO_PARTNER, pl.col("granted")),
        own_shared=pl.col("granted").filter(pl.col("purpose") == ConsentPurpose.SHARING.value).first(),
    )


@functools.cache
def _allowed() -> pl.Expr:
    """Some purpose the event can serve is granted (and for a partner's event, declared by the
    partner), and a partner's event may be shared with it.

    Built once: it does not change, and building it costs as much as evaluating it on a batch.
    """
    first_party_statement = pl.col("consent_purposes").is_not_null() & pl.col("partner_id").is_null()
    partner_statement = pl.col("consent_purposes").is_not_null() & pl.col("partner_id").is_not_null()
    attested = pl.col("consent_purposes").list.set_difference(
        pl.when(pl.col("gpc")).then(pl.lit([Purpose.ADVERTISING.value])).otherwise(pl.lit([], dtype=pl.List(pl.String)))
    )
    granted = (
        pl.when(first_party_statement)
        .then(pl.col("own_purposes"))
        .when(partner_statement)
        .then(attested)
        .otherwise(pl.col("granted_purposes"))
        .fill_null(NO_PURPOSES)
    )
    usable = (
        pl.when(pl.col("partner_id").is_null())
        .then(granted)
        .otherwise(granted.list.set_intersection(pl.col(DECLARED).fill_null(NO_PURPOSES)))
    )
    sharing_ok = (
        pl.when(pl.col("partner_id").is_null())
        .then(pl.lit(value=True))
        .otherwise(pl.coalesce("own_shared", "shared", pl.lit(value=False)))
    )
    return (usable.list.set_intersection(servable()).list.len() > 0) & sharing_ok
