"""segments, memberships, grants to partners, what partners were told, trusted documents

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import AutoBigInteger, UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("rule_text", sa.Text(), nullable=False),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("time_dependent", sa.Boolean(), nullable=False),
        sa.Column("template", sa.String(length=48), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("member_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("evaluation_started_at", UtcDateTime(), nullable=True),
        sa.Column("last_evaluated_at", UtcDateTime(), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.Column("last_error_code", sa.String(length=48), nullable=True),
        sa.Column("last_error_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_table(
        "segment_grants",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("segment_id", AutoBigInteger, nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("granted_at", UtcDateTime(), nullable=False),
        sa.Column("granted_by", sa.String(length=32), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_segment_grants_partner_id_partners")),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], name=op.f("fk_segment_grants_segment_id_segments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_grants")),
    )
    op.create_index(op.f("ix_segment_grants_partner_id"), "segment_grants", ["partner_id"], unique=False)
    op.create_index(op.f("ix_segment_grants_segment_id"), "segment_grants", ["segment_id"], unique=False)
    op.create_index(
        "ux_segment_grants_active",
        "segment_grants",
        ["segment_id", "partner_id", "purpose"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "segment_memberships",
        sa.Column("id", AutoBigInteger, nullable=False),
        sa.Column("segment_id", AutoBigInteger, nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("entered_at", UtcDateTime(), nullable=False),
        sa.Column("exited_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_segment_memberships_segment_id_segments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_memberships")),
    )
    op.create_index(op.f("ix_segment_memberships_subject_id"), "segment_memberships", ["subject_id"], unique=False)
    op.create_index(
        "ux_segment_memberships_current",
        "segment_memberships",
        ["segment_id", "subject_id"],
        unique=True,
        sqlite_where=sa.text("exited_at IS NULL"),
        postgresql_where=sa.text("exited_at IS NULL"),
    )
    op.create_table(
        "trusted_documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("registered_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_trusted_documents_partner_id_partners")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_trusted_documents")),
    )
    op.create_index(op.f("ix_trusted_documents_partner_id"), "trusted_documents", ["partner_id"], unique=False)
    op.create_table(
        "grant_audience",
        sa.Column("grant_id", AutoBigInteger, autoincrement=False, nullable=False),
        sa.Column("subject_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entered_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["segment_grants.id"],
            name=op.f("fk_grant_audience_grant_id_segment_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("grant_id", "subject_id", name=op.f("pk_grant_audience")),
    )
    op.create_index(op.f("ix_grant_audience_subject_id"), "grant_audience", ["subject_id"], unique=False)
    op.create_table(
        "grant_changes",
        sa.Column("seq", AutoBigInteger, nullable=False),
        sa.Column("grant_id", AutoBigInteger, nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=True),
        sa.Column("pseudonym", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["segment_grants.id"],
            name=op.f("fk_grant_changes_grant_id_segment_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_grant_changes")),
    )
    op.create_index("ix_grant_changes_grant_seq", "grant_changes", ["grant_id", "seq"], unique=False)
    op.create_index(op.f("ix_grant_changes_subject_id"), "grant_changes", ["subject_id"], unique=False)


def downgrade() -> None:
    for table in (
        "grant_changes",
        "grant_audience",
        "trusted_documents",
        "segment_memberships",
        "segment_grants",
        "segments",
    ):
        op.drop_table(table)
