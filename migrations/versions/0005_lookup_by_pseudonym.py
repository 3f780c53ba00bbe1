"""lookup by pseudonym: ingestion finds identities and suppressions of every kind in one query

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_identities_pseudonym", "identities", ["pseudonym"], unique=False)
    op.create_index("ix_suppressions_pseudonym", "suppressions", ["pseudonym"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_suppressions_pseudonym", table_name="suppressions")
    op.drop_index("ix_identities_pseudonym", table_name="identities")
