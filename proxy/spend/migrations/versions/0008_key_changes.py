"""Key changes every process polls: one row per key digest an admin change touched (delete, block, update,
rotate, or a change to the key's team or user), so cached keys are evicted on every worker and replica.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
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
        "key_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_changes")),
    )
    op.create_index(op.f("ix_key_changes_changed_at"), "key_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_key_changes_changed_at"), table_name="key_changes")
    op.drop_table("key_changes")
