"""Models added through the admin API (`store_model_in_db`), and the revision counter replicas poll.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_models",
        sa.Column("model_id", sa.String(), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("litellm_params", sa.Text(), nullable=False),
        sa.Column("model_info", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_proxy_models")),
    )
    op.create_table(
        "config_revisions",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("revision", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_config_revisions")),
    )


def downgrade() -> None:
    op.drop_table("config_revisions")
    op.drop_table("proxy_models")
