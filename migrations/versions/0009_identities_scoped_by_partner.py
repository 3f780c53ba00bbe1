"""identities scoped by partner: one link per identifier and scope, not per identifier

Revision ID: 0009
Revises: 0008

A partner's identifiers are linked in that partner's scope (``partner_id``), apart from ours:
the same email may be linked once by us and once by each partner, each to the subject its own
records chose. The unique key becomes (kind, key_version, pseudonym, scope), the scope being the
partner id or 0 for our own links (an expression index, as NULLs never collide in a unique key).
On SQLite the table is rebuilt to drop the old key (a copy of every identity).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD_KEY = "uq_identities_kind_key_version_pseudonym"
SCOPED_KEY = "ux_identities_scoped"


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_constraint(OLD_KEY, type_="unique")
    op.create_index(
        SCOPED_KEY, "identities", ["kind", "key_version", "pseudonym", sa.text("coalesce(partner_id, 0)")], unique=True
    )


def downgrade() -> None:
    """Refused while two scopes link one identifier: the old key cannot hold both."""
    op.drop_index(SCOPED_KEY, table_name="identities")
    with op.batch_alter_table("identities") as batch:
        batch.create_unique_constraint(OLD_KEY, ["kind", "key_version", "pseudonym"])
