"""The key change log also carries end-user and tag changes: a `kind` column ("key" for every existing row
and for rows a replica not yet upgraded writes) and `token` widened to text, since end-user ids and tag names
are not 64-character digests.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_changes") as batch:
        batch.add_column(sa.Column("kind", sa.String(), server_default=sa.text("'key'"), nullable=False))
        batch.alter_column("token", type_=sa.Text(), existing_type=sa.String(length=64), existing_nullable=False)


def downgrade() -> None:
    # Rows that are not key digests would be read as digests (and may not fit): their evictions are dropped.
    op.execute(sa.text("DELETE FROM key_changes WHERE kind <> 'key'"))
    with op.batch_alter_table("key_changes") as batch:
        batch.alter_column("token", type_=sa.String(length=64), existing_type=sa.Text(), existing_nullable=False)
        batch.drop_column("kind")
