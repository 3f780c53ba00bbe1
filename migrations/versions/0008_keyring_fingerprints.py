"""keyring fingerprints: which keyring the database belongs to

Revision ID: 0008
Revises: 0007

One row per version of the keys that identify the data (never a key: see
privacy/keyring_fingerprint.py). Existing databases get an empty table; the first command run
afterwards records the keyring only if it opens the stored data (audit entries, data keys).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keyring_fingerprints",
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("version", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "version", name=op.f("pk_keyring_fingerprints")),
    )


def downgrade() -> None:
    op.drop_table("keyring_fingerprints")
