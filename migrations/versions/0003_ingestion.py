"""ingestion: identity merge journal, subject traits

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_merges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("winner_subject_id", sa.BigInteger(), nullable=False),
        sa.Column("loser_subject_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("identities_moved", sa.Integer(), nullable=False),
        sa.Column("events_moved", sa.Integer(), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.Column("split_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_merges")),
    )
    op.create_index(op.f("ix_identity_merges_loser_subject_id"), "identity_merges", ["loser_subject_id"], unique=False)
    op.create_index(
        op.f("ix_identity_merges_winner_subject_id"), "identity_merges", ["winner_subject_id"], unique=False
    )
    op.create_table(
        "subject_traits",
        sa.Column("subject_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=True),
        sa.Column("gender", sa.String(length=8), nullable=True),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_subject_traits_subject_id_subjects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_subject_traits")),
    )
    op.add_column("events", sa.Column("origin_subject_id", sa.BigInteger(), nullable=True))
    op.add_column("events", sa.Column("topics", sa.Text(), nullable=True))
    op.add_column("events", sa.Column("amount", sa.Float(), nullable=True))
    op.add_column("events", sa.Column("currency", sa.String(length=3), nullable=True))
    op.add_column("events", sa.Column("campaign", sa.String(length=64), nullable=True))
    op.add_column("events", sa.Column("region", sa.String(length=16), nullable=True))
    op.drop_column("events", "properties")
    op.add_column("identities", sa.Column("origin_subject_id", sa.BigInteger(), nullable=True))
    # Rows that exist already were first seen on the subject they belong to now.
    for table in ("events", "identities"):
        op.execute(f"UPDATE {table} SET origin_subject_id = subject_id")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("origin_subject_id", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    op.drop_column("identities", "origin_subject_id")
    op.add_column("events", sa.Column("properties", sa.JSON(), nullable=False, server_default="{}"))
    op.drop_column("events", "region")
    op.drop_column("events", "campaign")
    op.drop_column("events", "currency")
    op.drop_column("events", "amount")
    op.drop_column("events", "topics")
    op.drop_column("events", "origin_subject_id")
    op.drop_table("subject_traits")
    op.drop_index(op.f("ix_identity_merges_winner_subject_id"), table_name="identity_merges")
    op.drop_index(op.f("ix_identity_merges_loser_subject_id"), table_name="identity_merges")
    op.drop_table("identity_merges")
