"""Records already judged, known by the keyed hash of their messageId: a resend is a duplicate.

A record that passed validation is judged once: stored as an event, or refused for consent or
suppression and kept here as a receipt. Sent again — a retrying client, a re-imported file, a
rerun after a crash — it is a duplicate whatever became of it: it is not judged again, so its
consent statement is not weighed a second time against a state that moved since, and the sender
gets the same answer for a person we hold, with or without consent, or erased.

Message ids are hashed with ``privacy.message_keys`` (under every key version, for lookups) while
the batch is checked, off the write lock; only the current version's key is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl
from sqlalchemy.orm import Session

from server.privacy_kit import PrivacyKit
from server.storage.bulk import bulk_insert
from server.storage.lookup import select_where_in
from server.storage.tables import MessageReceiptRow

MESSAGE_KEYS: Final = "message_keys"
"""A record's message id hashed under every key version, current first (``List(Binary)``)."""
# One round trip: both databases push the conditions into each side (each side's key is probed).
JUDGED_QUERY: Final = (
    "SELECT message_key FROM (SELECT source, message_key FROM events"
    f" UNION ALL SELECT source, message_key FROM {MessageReceiptRow.__tablename__}) AS judged"
    " WHERE source IN ({sources}) AND message_key {{in}}"
)


def with_message_keys(records: pl.DataFrame, kit: PrivacyKit) -> pl.DataFrame:
    """``records`` with ``MESSAGE_KEYS``, one bulk HMAC pass per key version."""
    ids = records["message_id"].to_list()
    keys = kit.message_keys
    per_version = [pl.Series(keys.digest_many(ids, key_version=v), dtype=pl.Binary) for v in keys.versions]
    return records.with_columns(pl.concat_list(per_version).alias(MESSAGE_KEYS))


def current_key() -> pl.Expr:
    """The key a record is stored under: the current version's."""
    return pl.col(MESSAGE_KEYS).list.first()


def already_judged(session: Session, sources: Sequence[str], message_keys: pl.Series) -> pl.Series:
    """Per record (``message_keys`` of each): whether this source sent it before and it was judged.

    ``sources``: every form the source was stored under (``LabelKeeper.every_form``: hashed under
    an older key version, or in clear before it was declared), so that neither a key rotation nor
    a declaration makes a record sent before new again. Asked in key order: each chunk of the
    lookup then reads neighbouring pages of the key index instead of pages all over it.
    """
    wanted = message_keys.explode().unique().sort().to_list()
    query = JUDGED_QUERY.format(sources=", ".join("?" * len(sources)))
    found = [key for (key,) in select_where_in(session, query, wanted, params=tuple(sources))]
    if not found:
        return pl.repeat(False, message_keys.len(), eager=True, dtype=pl.Boolean)
    known = pl.Series([bytes(key) for key in found], dtype=pl.Binary).implode()
    return message_keys.list.eval(pl.element().is_in(known)).list.any()


def insert_receipts(session: Session, records: pl.DataFrame, *, source: str) -> None:
    """Receipts for judged records that were not stored, in one bulk write."""
    bulk_insert(
        session,
        MessageReceiptRow,
        records.select(pl.lit(source).alias("source"), current_key().alias("message_key")).sort("message_key"),
        ignore_conflicts=False,  # none can race: writers of a source take turns (serialize_identity_writes)
    )
