"""profile state: daily rollups, first and last times, decayed interests; build runs

Revision ID: 0010
Revises: 0009

New tables only, empty: existing events get their profile state from the first `audience build`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import AutoBigInteger, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_daily",
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "day", "type", "channel", name=op.f("pk_profile_daily")),
    )
    op.create_table(
        "profile_summary",
        sa.Column("subject_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("first_purchase", UtcDateTime(), nullable=True),
        sa.Column("last_purchase", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_profile_summary")),
    )
    op.create_table(
        "profile_interests",
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "topic", name=op.f("pk_profile_interests")),
    )
    op.create_table(
        "profile_builds",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("partitions_done", sa.Integer(), nullable=False),
        sa.Column("events_read", sa.BigInteger(), nullable=False),
        sa.Column("subjects", sa.BigInteger(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("cut_points", sa.JSON(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(length=48), nullable=True),
        sa.Column("error_message", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_builds")),
    )
    op.create_index(op.f("ix_profile_builds_status"), "profile_builds", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_profile_builds_status"), table_name="profile_builds")
    for table in ("profile_builds", "profile_interests", "profile_summary", "profile_daily"):
        op.drop_table(table)
