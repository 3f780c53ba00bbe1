"""Bulk writes of a resolved batch: new subjects with their data keys, identities, events."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy.orm import Session

from privacy.field_crypto import new_data_key
from server.frames.events import ROW
from server.ingest.receipts import current_key
from server.privacy_kit import PrivacyKit
from server.storage.bulk import bulk_insert
from server.storage.tables import EventRow, IdentityRow, SubjectKeyRow, SubjectRow


def create_subjects(session: Session, created: pl.DataFrame, kit: PrivacyKit, now: datetime) -> None:
    """Each new subject with its own data key, wrapped under the current KEK, in two bulk inserts.

    ``created``: (subject_id, row), the first record of each new subject in the pass, which ranks
    subjects created together (``SubjectRow.created_rank``).
    """
    if created.height == 0:
        return
    subject_ids = created["subject_id"].to_list()
    wrapped = [kit.key_wrapper.wrap(new_data_key(), s) for s in subject_ids]
    at = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
    ids = pl.Series("id", subject_ids, dtype=pl.Int64)
    bulk_insert(
        session,
        SubjectRow,
        created.select(
            pl.col("subject_id").cast(pl.Int64).alias("id"),
            at.alias("created_at"),
            pl.col(ROW).cast(pl.Int64).alias("created_rank"),
            pl.lit("active").alias("status"),
        ),
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
    """``Resolution.new_identities``, with their origin. Conflicts are ignored: a concurrent batch
    that linked the same identifier first wins."""
    bulk_insert(session, IdentityRow, identities.with_columns(first_seen=pl.lit(now, dtype=pl.Datetime("us", "UTC"))))


def event_rows(events: pl.DataFrame, *, source: str, now: datetime) -> pl.DataFrame:
    """Resolved records (with ``subject_id``, ``topics_known`` and ``message_keys``) in the events table's columns."""
    return events.select(
        pl.lit(source).alias("source"),
        current_key().alias("message_key"),
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


def insert_events(session: Session, rows: pl.DataFrame) -> None:
    """``event_rows`` in one bulk statement; the (source, message_key) key turns a racing replay
    into a no-op. In key order, so the unique index is filled by walking it once rather than at random.
    """
    bulk_insert(session, EventRow, rows.sort("message_key"))
