"""Expired events: deleted in bulk, their keys kept as receipts, the profile state cut to match.

An event that occurred before the cutoff (a UTC midnight, ``policy``) is deleted, one partition
of subjects at a time, with set-based statements only. Before that:

- its ``(source, message_key)`` goes to ``message_receipts`` (``INSERT ... SELECT``, conflicts
  ignored), so that the same record sent again is still a duplicate and never judged anew;
- the profile state derived from it is made what a build from the remaining events would give:
  ``profile_daily`` rows of days before the cutoff's are deleted (the cutoff is a midnight, so a
  day's rollup and its events go together); a ``profile_summary`` with no event left is deleted,
  and one whose first event or purchase went gets the first of those left (the last ones are at or
  after the cutoff by then, or the row is gone); an interest accumulator whose last event is
  before the cutoff is deleted (every event in it went), and one still in use gets the share of
  the deleted events taken out of it: an accumulator is a sum of decayed weights, so the deleted
  events' own accumulator, decayed to its ``as_of``, is subtracted (exact to rounding, floored
  at 0; a weight changed since those events were folded leaves the difference until a build).

A subject under restriction (Art. 18, ``subject_restrictions``) keeps everything: restriction
means keep the data, and a person may ask for it precisely so that it is not deleted.

Every writer of the profile state holds the identity writers' turn (``server.storage.locks``);
the purge takes it too, so an ingest batch folding into the same accumulators waits for it.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from server.frames.profiles import INTEREST_SCHEMA, PURCHASE, STATE_EVENT_SCHEMA, TIMESTAMP
from server.profiles.config import InterestConfig
from server.profiles.partitions import Partition
from server.profiles.state import decay_factor, interests_of
from server.retention.deletes import affected, remove_rows
from server.retention.policy import Cutoffs
from server.retention.report import Category, PurgeReport
from server.runtime import UnitOfWork
from server.storage.bulk import bulk_upsert
from server.storage.locks import serialize_identity_writes
from server.storage.lookup import frame_where_in
from server.storage.tables import (
    EventRow,
    MessageReceiptRow,
    ProfileDailyRow,
    ProfileInterestRow,
    ProfileSummaryRow,
    SubjectRestrictionRow,
)
from server.storage.upsert import insert_selected_ignoring_conflicts, table_of

__all__ = ["purge_events"]

EVENTS = table_of(EventRow)
DAILY = table_of(ProfileDailyRow)
SUMMARY = table_of(ProfileSummaryRow)
INTERESTS = table_of(ProfileInterestRow)
RESTRICTED = select(table_of(SubjectRestrictionRow).c.subject_id)


def purge_events(unit: UnitOfWork, partition: Partition, cutoffs: Cutoffs) -> PurgeReport:
    """The partition's expired events, and the state they leave behind cut to match."""
    session = unit.session
    serialize_identity_writes(session)
    cutoff = cutoffs.events
    expired = and_(_in(EVENTS.c.subject_id, partition), EVENTS.c.occurred_at < cutoff)
    corrected = _corrected_interests(session, expired, cutoff, unit.profiles.interests)
    removed: dict[str, int] = {}
    keys = select(EVENTS.c.source, EVENTS.c.message_key).where(expired)
    receipts = insert_selected_ignoring_conflicts(session, MessageReceiptRow, ["source", "message_key"], keys)
    removed[EventRow.__tablename__] = remove_rows(session, EVENTS, expired)
    removed[ProfileDailyRow.__tablename__] = remove_rows(
        session, DAILY, and_(_in(DAILY.c.subject_id, partition), DAILY.c.day < cutoffs.events_day)
    )
    summaries = _in(SUMMARY.c.subject_id, partition)
    removed[ProfileSummaryRow.__tablename__] = remove_rows(
        session, SUMMARY, and_(summaries, SUMMARY.c.last_seen < cutoff)
    )
    updated = _update_summaries(session, summaries, cutoff)
    removed[ProfileInterestRow.__tablename__] = remove_rows(
        session, INTERESTS, and_(_in(INTERESTS.c.subject_id, partition), INTERESTS.c.as_of < cutoff)
    )
    bulk_upsert(session, ProfileInterestRow, corrected, keys=["subject_id", "topic"], newer="as_of")
    return PurgeReport(
        cutoffs=cutoffs,
        removed={Category.EVENTS: removed},
        profile_rows_updated=updated + corrected.height,
        receipts_kept=receipts,
    )


def _in(column: Any, partition: Partition) -> Any:
    """The partition's subjects, those under restriction left out."""
    return and_(column.between(partition.low, partition.high), column.not_in(RESTRICTED))


def _update_summaries(session: Session, summaries: Any, cutoff: Any) -> int:
    """First event and first purchase from the events left; run after the events are deleted."""
    stale = and_(
        summaries,
        SUMMARY.c.last_seen >= cutoff,
        or_(SUMMARY.c.first_seen < cutoff, SUMMARY.c.first_purchase < cutoff),
    )
    own = EVENTS.c.subject_id == SUMMARY.c.subject_id
    first_left = select(func.min(EVENTS.c.occurred_at)).where(own).scalar_subquery()
    first_purchase_left = select(func.min(EVENTS.c.occurred_at)).where(own, EVENTS.c.type == PURCHASE).scalar_subquery()
    statement = (
        update(SUMMARY)
        .where(stale)
        .values(
            first_seen=case((SUMMARY.c.first_seen < cutoff, first_left), else_=SUMMARY.c.first_seen),
            first_purchase=case(
                (SUMMARY.c.first_purchase < cutoff, first_purchase_left), else_=SUMMARY.c.first_purchase
            ),
            last_purchase=case((SUMMARY.c.last_purchase < cutoff, None), else_=SUMMARY.c.last_purchase),
        )
    )
    return affected(session.execute(statement))


def _corrected_interests(session: Session, expired: Any, cutoff: Any, config: InterestConfig) -> pl.DataFrame:
    """The accumulators that outlive the purge, with the expired events' share taken out.

    Read before the events are deleted: the expired events naming a topic, of subjects holding an
    accumulator with an event at or after the cutoff (the others' accumulators are deleted whole).
    """
    holding = exists().where(INTERESTS.c.subject_id == EVENTS.c.subject_id, INTERESTS.c.as_of >= cutoff)
    query = select(*(EVENTS.c[name] for name in STATE_EVENT_SCHEMA)).where(
        expired, EVENTS.c.topics.is_not(None), holding
    )
    events = pl.DataFrame(session.execute(query).all(), schema=STATE_EVENT_SCHEMA, orient="row")
    if events.height == 0:
        return INTEREST_SCHEMA.to_frame()
    gone = interests_of(events.lazy(), config)
    stored = frame_where_in(
        session,
        f"SELECT {', '.join(INTEREST_SCHEMA)} FROM {INTERESTS.name} WHERE subject_id {{in}}",
        gone["subject_id"].unique().sort().to_list(),
        INTEREST_SCHEMA,
    )
    elapsed = pl.col("as_of") - pl.col("gone_as_of")
    return (
        stored.filter(pl.col("as_of") >= pl.lit(cutoff, dtype=TIMESTAMP))
        .join(gone.rename({"score": "gone_score", "as_of": "gone_as_of"}), on=["subject_id", "topic"], how="inner")
        .join(config.half_lives(), on="topic", how="inner")
        .with_columns(
            score=(pl.col("score") - pl.col("gone_score") * decay_factor(elapsed, pl.col("half_life_days"))).clip(
                lower_bound=0.0
            )
        )
        .select(list(INTEREST_SCHEMA))
    )
