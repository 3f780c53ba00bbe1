"""message ids kept as keyed hashes; receipts of records judged and not stored; subjects' creation rank

Revision ID: 0007
Revises: 0006

Events are keyed by (message_key, source), the HMAC of the sender's messageId under a key derived
from the keyring (``privacy.message_keys``), instead of the messageId in clear. Stored events are
re-keyed here, so this revision needs the keyring when the events table holds rows: `audience
migrate` and `audience init` pass it (``server.storage.migrate``); without it the upgrade stops
before changing anything (``KeyringNeeded``). The table is rebuilt rather than altered, so no
message id is left behind in the old rows or in the mapping built on the way: on SQLite their
freed pages are zeroed (``secure_delete``) and the write-ahead log is emptied after
(``server.storage.migrate.upgrade``); on PostgreSQL their files are removed at commit. Allow the
room and the time of a copy of the events table.

``message_receipts`` starts empty: records refused before this revision are judged again if
they are ever sent again, once. ``subjects.created_rank`` is 0 for existing subjects.

The downgrade cannot recover message ids: it keeps each key's hex form as the event id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from server.storage.migrate import MESSAGE_KEYS_ATTRIBUTE, KeyringNeeded

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHUNK = 50_000
EVENT_COLUMNS = (
    "subject_id, origin_subject_id, type, channel, occurred_at, received_at, topics, amount, currency, campaign, region"
)


def upgrade() -> None:
    bind = op.get_bind()
    hash_ids: Callable[[Sequence[str]], list[bytes]] | None = context.config.attributes.get(MESSAGE_KEYS_ATTRIBUTE)
    stored = bind.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    if stored and hash_ids is None:
        raise KeyringNeeded("message ids of stored events")
    op.add_column("subjects", sa.Column("created_rank", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.create_table(
        "message_receipts",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("message_key", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("message_key", "source", name=op.f("pk_message_receipts")),
    )
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        bind.exec_driver_sql("PRAGMA secure_delete = ON")
    _key_map(bind, hash_ids)
    op.drop_index("ix_events_subject", table_name="events")
    if not sqlite:  # PostgreSQL names constraints per schema; SQLite per table
        op.execute("ALTER TABLE events RENAME CONSTRAINT pk_events TO pk_events_with_ids")
    op.create_table(
        "events_keyed",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("message_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("origin_subject_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("topics", sa.Text(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("message_key", "source", name="pk_events"),
    )
    op.execute(
        f"INSERT INTO events_keyed (source, message_key, {EVENT_COLUMNS})"
        f" SELECT e.source, k.message_key, {', '.join(f'e.{c}' for c in EVENT_COLUMNS.split(', '))}"
        " FROM events e JOIN event_key_map k ON k.source = e.source AND k.event_id = e.event_id"
    )
    op.drop_table("event_key_map")
    op.drop_table("events")
    op.rename_table("events_keyed", "events")
    op.create_index("ix_events_subject", "events", ["subject_id"], unique=False)
    if sqlite:
        bind.exec_driver_sql("PRAGMA secure_delete = OFF")


def _key_map(bind: sa.Connection, hash_ids: Callable[[Sequence[str]], list[bytes]] | None) -> None:
    """A (source, event_id, message_key) table, dropped by the caller, filled a chunk at a time in key order.

    In the database, not a temporary table: SQLite's would go to a temporary file, whose pages
    ``secure_delete`` does not zero.
    """
    op.create_table(
        "event_key_map",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("message_key", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_event_key_map"),
    )
    if hash_ids is None:
        return
    after: tuple[str, str] = ("", "")
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT source, event_id FROM events WHERE source > :source OR (source = :source AND event_id > :id)"
                " ORDER BY source, event_id LIMIT :limit"
            ),
            {"source": after[0], "id": after[1], "limit": CHUNK},
        ).all()
        if not rows:
            return
        keys = hash_ids([event_id for _source, event_id in rows])
        bind.execute(
            sa.text("INSERT INTO event_key_map (source, event_id, message_key) VALUES (:source, :id, :key)"),
            [{"source": s, "id": e, "key": k} for (s, e), k in zip(rows, keys, strict=True)],
        )
        after = (rows[-1][0], rows[-1][1])


def downgrade() -> None:
    bind = op.get_bind()
    hexed = "lower(hex(message_key))" if bind.dialect.name == "sqlite" else "encode(message_key, 'hex')"
    op.add_column("events", sa.Column("event_id", sa.String(length=128), nullable=True))
    op.execute(f"UPDATE events SET event_id = {hexed}")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("pk_events", type_="primary")
        batch.drop_column("message_key")
        batch.alter_column("event_id", existing_type=sa.String(length=128), nullable=False)
        batch.create_primary_key("pk_events", ["source", "event_id"])
    op.drop_table("message_receipts")
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("created_rank")
