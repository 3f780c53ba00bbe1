"""ingest tallies per source, day and outcome; data-quality reports per build and source

Revision ID: 0011
Revises: 0010

Events stored before this revision are counted as ``accepted`` on the day they were received, so
a source's tallies and its rows agree from the start; what was rejected, duplicated or merged
before it was never recorded by code and stays uncounted (the ``ingest.batch`` audit entries
hold its totals).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Days since 1970-01-01 of a naive UTC timestamp, as the tallies number them.
_DAY = {
    "postgresql": "(received_at::date - DATE '1970-01-01')",
    "sqlite": "CAST(julianday(date(received_at)) - 2440587.5 AS INTEGER)",
}


def upgrade() -> None:
    op.create_table(
        "ingest_tallies",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("outcome", sa.String(length=48), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "day", "outcome", name=op.f("pk_ingest_tallies")),
    )
    op.create_table(
        "data_quality_reports",
        sa.Column("build_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("last_occurred_at", UtcDateTime(), nullable=True),
        sa.Column("last_received_at", UtcDateTime(), nullable=True),
        sa.Column("anomalous_days", sa.Integer(), nullable=False),
        sa.Column("bot_like_subjects", sa.BigInteger(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["profile_builds.id"],
            name=op.f("fk_data_quality_reports_build_id_profile_builds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("build_id", "source", name=op.f("pk_data_quality_reports")),
    )
    day = _DAY[op.get_bind().dialect.name]
    op.execute(
        f"INSERT INTO ingest_tallies (source, day, outcome, count) "
        f"SELECT source, {day}, 'accepted', count(*) FROM events GROUP BY source, {day}"
    )


def downgrade() -> None:
    op.drop_table("data_quality_reports")
    op.drop_table("ingest_tallies")
