"""data-subject requests, erasure receipts, restrictions; the merge journal outlives an erasure

Revision ID: 0012
Revises: 0011

The journal's subject columns become nullable: erasure clears them and keeps the row, so the
count of merges stays true without saying whose they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import AutoBigInteger, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_requests",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("identifier_kind", sa.String(length=24), nullable=False),
        sa.Column("identifier_key_version", sa.SmallInteger(), nullable=False),
        sa.Column("identifier_pseudonym", sa.LargeBinary(length=32), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("filed_by", sa.String(length=32), nullable=True),
        sa.Column("verified_at", UtcDateTime(), nullable=True),
        sa.Column("verified_by", sa.String(length=32), nullable=True),
        sa.Column("verification_method", sa.String(length=32), nullable=True),
        sa.Column("verification_reference", sa.String(length=64), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("rejection_reason", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_requests")),
    )
    op.create_index("ix_subject_requests_status_due", "subject_requests", ["status", "due_at"])
    op.create_index("ix_subject_requests_identifier", "subject_requests", ["identifier_pseudonym"])
    op.create_index(op.f("ix_subject_requests_closed_at"), "subject_requests", ["closed_at"])
    op.create_table(
        "erasure_receipts",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("completed_at", UtcDateTime(), nullable=False),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("keys_destroyed", sa.Integer(), nullable=False),
        sa.Column("identifiers_suppressed", sa.Integer(), nullable=False),
        sa.Column("rows_removed", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_receipts")),
    )
    op.create_index(op.f("ix_erasure_receipts_request_id"), "erasure_receipts", ["request_id"])
    op.create_index(op.f("ix_erasure_receipts_completed_at"), "erasure_receipts", ["completed_at"])
    op.create_table(
        "subject_restrictions",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_subject_restrictions_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_restrictions")),
    )
    op.create_index(op.f("ix_subject_restrictions_subject_id"), "subject_restrictions", ["subject_id"])
    with op.batch_alter_table("identity_merges") as batch:
        batch.alter_column("winner_subject_id", existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("loser_subject_id", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM identity_merges WHERE winner_subject_id IS NULL OR loser_subject_id IS NULL")
    with op.batch_alter_table("identity_merges") as batch:
        batch.alter_column("loser_subject_id", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("winner_subject_id", existing_type=sa.BigInteger(), nullable=False)
    op.drop_table("subject_restrictions")
    op.drop_table("erasure_receipts")
    op.drop_table("subject_requests")
