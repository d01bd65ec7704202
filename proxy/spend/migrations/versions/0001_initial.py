"""Initial schema: virtual keys, end users, spend logs, proxy-wide spend.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ZERO = sa.text("0")


def _money() -> sa.Numeric:
    return sa.Numeric(20, 10)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verification_tokens",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("key_alias", sa.String(), nullable=True),
        sa.Column("key_name", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("models", _json(), nullable=False),
        sa.Column("expires", _ts(), nullable=True),
        sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("spend", _money(), server_default=ZERO, nullable=False),
        sa.Column("max_budget", _money(), nullable=True),
        sa.Column("budget_duration", sa.String(), nullable=True),
        sa.Column("budget_reset_at", _ts(), nullable=True),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.Integer(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_rpm_limit", _json(), nullable=True),
        sa.Column("guardrails", _json(), nullable=True),
        sa.Column("fallbacks", _json(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_verification_tokens"),
        sa.UniqueConstraint("key_alias", name="uq_verification_tokens_key_alias"),
    )
    op.create_index("ix_verification_tokens_user_id", "verification_tokens", ["user_id"])

    op.create_table(
        "end_users",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("alias", sa.String(), nullable=True),
        sa.Column("spend", _money(), server_default=ZERO, nullable=False),
        sa.Column("max_budget", _money(), nullable=True),
        sa.Column("budget_duration", sa.String(), nullable=True),
        sa.Column("budget_reset_at", _ts(), nullable=True),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_end_users"),
    )

    op.create_table(
        "spend_logs",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.Column("key_alias", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("end_user", sa.String(), nullable=True),
        sa.Column("model_alias", sa.String(), nullable=False),
        sa.Column("deployment", sa.String(), nullable=True),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("provider_model", sa.String(), nullable=True),
        sa.Column("search_units", sa.Float(), server_default=ZERO, nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", _money(), server_default=ZERO, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(), nullable=True),
        sa.Column("fallback_used", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("guardrails", _json(), nullable=True),
        sa.Column("metadata", _json(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_spend_logs"),
    )
    for column in ("started_at", "key_hash", "end_user", "model_alias"):
        op.create_index(f"ix_spend_logs_{column}", "spend_logs", [column])

    op.create_table(
        "proxy_spend",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("spend", _money(), server_default=ZERO, nullable=False),
        sa.Column("max_budget", _money(), nullable=True),
        sa.Column("budget_duration", sa.String(), nullable=True),
        sa.Column("budget_reset_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_proxy_spend"),
    )


def downgrade() -> None:
    op.drop_table("proxy_spend")
    for column in ("started_at", "key_hash", "end_user", "model_alias"):
        op.drop_index(f"ix_spend_logs_{column}", table_name="spend_logs")
    op.drop_table("spend_logs")
    op.drop_table("end_users")
    op.drop_index("ix_verification_tokens_user_id", table_name="verification_tokens")
    op.drop_table("verification_tokens")
