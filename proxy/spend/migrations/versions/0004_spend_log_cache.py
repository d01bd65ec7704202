"""Spend rows say whether the result cache answered (`cache`: hit | partial | miss) and what it saved.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("spend_logs", sa.Column("cache", sa.String(length=8), nullable=True))
    op.add_column("spend_logs", sa.Column("cost_saved", sa.Numeric(precision=20, scale=10),
                                          server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("spend_logs") as batch:
        batch.drop_column("cost_saved")
        batch.drop_column("cache")
