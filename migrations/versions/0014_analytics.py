"""analytics: a theta sketch per segment, the ledger of releases each key was given

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import AutoBigInteger, UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_sketches",
        sa.Column("segment_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lg_k", sa.Integer(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("built_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_segment_sketches_segment_id_segments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segment_sketches")),
    )
    op.create_table(
        "analytics_releases",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("released_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_releases")),
    )
    op.create_index(
        "ux_analytics_releases_key_period_release",
        "analytics_releases",
        ["key_id", "period", "release"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_analytics_releases_key_period_release", table_name="analytics_releases")
    op.drop_table("analytics_releases")
    op.drop_table("segment_sketches")
