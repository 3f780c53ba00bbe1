"""events keyed by sender id: no surrogate id; the subject index without the time

Revision ID: 0006
Revises: 0005

The events table is the largest and the one bulk-loaded: its surrogate id (a sequence on
PostgreSQL) and the time column in the subject index were per-row work no reader used. The
(source, event_id) unique key becomes the primary key. On SQLite the table is rebuilt (a copy of
every event: allow the room and the time on a large store); PostgreSQL alters it in place and
builds the two indexes once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_subject_time", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_source_event_id", type_="unique")
        batch.drop_constraint("pk_events", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_events", ["source", "event_id"])
    op.create_index("ix_events_subject", "events", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_subject", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_events", "events", type_="primary")
        op.execute("ALTER TABLE events ADD COLUMN id BIGSERIAL NOT NULL")  # numbers the stored rows
        op.create_primary_key("pk_events", "events", ["id"])
        op.create_unique_constraint("uq_events_source_event_id", "events", ["source", "event_id"])
    else:
        with op.batch_alter_table("events") as batch:  # the copy numbers the rows (rowid)
            batch.drop_constraint("pk_events", type_="primary")
            batch.add_column(sa.Column("id", sa.Integer(), nullable=False))
            batch.create_primary_key("pk_events", ["id"])
            batch.create_unique_constraint("uq_events_source_event_id", ["source", "event_id"])
    op.create_index("ix_events_subject_time", "events", ["subject_id", "occurred_at"], unique=False)
