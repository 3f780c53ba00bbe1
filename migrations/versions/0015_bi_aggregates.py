"""bi aggregates: the released figures published for BI tools (SQL views, Parquet)

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import AutoBigInteger, UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bi_aggregates",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("aggregate", sa.String(length=32), nullable=False),
        sa.Column("subject_label", sa.String(length=256), nullable=False),
        sa.Column("dimension", sa.String(length=64), nullable=True),
        sa.Column("cell", sa.String(length=256), nullable=True),
        sa.Column("value", sa.BigInteger(), nullable=True),
        sa.Column("suppressed", sa.String(length=32), nullable=True),
        sa.Column("low", sa.BigInteger(), nullable=True),
        sa.Column("high", sa.BigInteger(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("noise_scale", sa.Float(), nullable=True),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bi_aggregates")),
    )
    op.create_index("ix_bi_aggregates_aggregate_label", "bi_aggregates", ["aggregate", "subject_label"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The BI views (``audience bi grant``) depend on the table; roles lose them with it.
        op.execute("DROP SCHEMA IF EXISTS audience_bi CASCADE")
    op.drop_index("ix_bi_aggregates_aggregate_label", table_name="bi_aggregates")
    op.drop_table("bi_aggregates")
