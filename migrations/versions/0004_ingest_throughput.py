"""ingest throughput: no per-row foreign key on events; derived-data rebuild marks

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EVENTS_SUBJECT_FK = "fk_events_subject_id_subjects"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(EVENTS_SUBJECT_FK, type_="foreignkey")
        batch.alter_column("subject_id", existing_type=sa.BigInteger(), type_=sa.BigInteger(), existing_nullable=False)
    op.create_table(
        "derived_rebuilds",
        sa.Column("subject_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("marked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_derived_rebuilds")),
    )
    op.create_index(op.f("ix_derived_rebuilds_marked_at"), "derived_rebuilds", ["marked_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_derived_rebuilds_marked_at"), table_name="derived_rebuilds")
    op.drop_table("derived_rebuilds")
    with op.batch_alter_table("events") as batch:
        batch.create_foreign_key(EVENTS_SUBJECT_FK, "subjects", ["subject_id"], ["id"], ondelete="CASCADE")
