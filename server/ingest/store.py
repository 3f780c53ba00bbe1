"""Bulk writes of a resolved batch: new subjects with their data keys, identities, events."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from privacy.field_crypto import new_data_key
from server.privacy_kit import PrivacyKit
from server.storage.bulk import bulk_insert
from server.storage.lookup import select_where_in
from server.storage.tables import EventRow, IdentityRow, SubjectKeyRow, SubjectRow


def already_stored(session: Session, source: str, message_ids: pl.Series) -> set[str]:
    """Event ids of this source that are in the database: a replayed batch adds nothing.

    Asked in key order: each chunk of the lookup then reads neighbouring pages of the key index
    instead of pages all over it (a third less time on SQLite, 200,000 ids against 1,000,000).
    """
    rows = select_where_in(
        session,
        "SELECT event_id FROM events WHERE source = ? AND event_id {in}",
        message_ids.unique().sort().to_list(),
        params=(source,),
    )
    return {row[0] for row in rows}


def create_subjects(session: Session, subject_ids: list[int], kit: PrivacyKit, now: datetime) -> None:
    """Each new subject with its own data key, wrapped under the current KEK, in two bulk inserts."""
    if not subject_ids:
        return
    wrapped = [kit.key_wrapper.wrap(new_data_key(), s) for s in subject_ids]
    at = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    ids = pl.Series("id", subject_ids, dtype=pl.Int64)
    bulk_insert(
        session,
        SubjectRow,
        pl.DataFrame([ids]).with_columns(created_at=at, status=pl.lit("active")),
        ignore_conflicts=False,
    )
    bulk_insert(
        session,
        SubjectKeyRow,
        pl.DataFrame(
            {
                "subject_id": ids,
                "kek_version": pl.Series([w.kek_version for w in wrapped], dtype=pl.Int64),
                "wrapped_dek": pl.Series([w.blob for w in wrapped], dtype=pl.Binary),
            }
        ).with_columns(created_at=at),
        ignore_conflicts=False,
    )


def insert_identities(session: Session, identities: pl.DataFrame, now: datetime) -> None:
    """Conflicts are ignored: a concurrent batch that linked the same identifier first wins."""
    bulk_insert(
        session,
        IdentityRow,
        identities.with_columns(
            origin_subject_id=pl.col("subject_id"), first_seen=pl.lit(now, dtype=pl.Datetime("us", "UTC"))
        ),
    )


def event_rows(events: pl.DataFrame, *, source: str, now: datetime) -> pl.DataFrame:
    """Resolved records (with ``subject_id`` and ``topics_known``) in the events table's columns."""
    return events.select(
        pl.lit(source).alias("source"),
        pl.col("message_id").alias("event_id"),
        "subject_id",
        pl.col("subject_id").alias("origin_subject_id"),
        pl.col("event").alias("type"),
        "channel",
        pl.col("timestamp").alias("occurred_at"),
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("received_at"),
        pl.when(pl.col("topics_known").list.len() > 0).then(pl.col("topics_known").list.join(";")).alias("topics"),
        "amount",
        "currency",
        "campaign",
        "region",
    )


def insert_events(session: Session, events: pl.DataFrame, *, source: str, now: datetime) -> None:
    """One bulk statement; the (source, event_id) constraint turns a racing replay into a no-op.

    In key order, so the unique index is filled by walking it once rather than at random.
    """
    bulk_insert(session, EventRow, event_rows(events, source=source, now=now).sort("event_id"))
