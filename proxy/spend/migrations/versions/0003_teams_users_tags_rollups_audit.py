"""Teams, internal users and their memberships, tags, hourly spend rollups and the audit log; keys get a
stable `key_id` (kept by /key/regenerate), a `team_id`, `tags` and a grace slot for their previous secret;
spend rows get `key_id`, `team_id` and `tags`.

Existing keys get a random `key_id`; their spend rows keep `key_id` NULL and stay found by `key_hash`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
DIMENSIONS = ("key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider")


def _money() -> sa.Numeric:
    return sa.Numeric(20, 10)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _budgeted() -> list[sa.Column]:
    return [
        sa.Column("spend", _money(), server_default=ZERO, nullable=False),
        sa.Column("max_budget", _money(), nullable=True),
        sa.Column("budget_duration", sa.String(), nullable=True),
        sa.Column("budget_reset_at", _ts(), nullable=True),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.Integer(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
    ]


def _measures() -> list[sa.Column]:
    return [
        sa.Column("requests", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("errors", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("spend", _money(), server_default=ZERO, nullable=False),
        sa.Column("search_units", sa.Float(), server_default=ZERO, nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("verification_tokens") as batch:
        batch.add_column(sa.Column("key_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("team_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("tags", _json(), nullable=True))
        batch.add_column(sa.Column("previous_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_token_expires", _ts(), nullable=True))
    connection = op.get_bind()
    keys = sa.table("verification_tokens", sa.column("token", sa.String()), sa.column("key_id", sa.String()))
    tokens = connection.execute(sa.select(keys.c.token)).scalars().all()
    if tokens:
        connection.execute(
            keys.update().where(keys.c.token == sa.bindparam("t")).values(key_id=sa.bindparam("k")),
            [{"t": token, "k": uuid.uuid4().hex} for token in tokens],
        )
    with op.batch_alter_table("verification_tokens") as batch:
        batch.alter_column("key_id", existing_type=sa.String(), nullable=False)
        batch.create_unique_constraint("uq_verification_tokens_key_id", ["key_id"])
        batch.create_unique_constraint("uq_verification_tokens_previous_token", ["previous_token"])
        batch.create_index("ix_verification_tokens_team_id", ["team_id"])

    with op.batch_alter_table("spend_logs") as batch:
        batch.add_column(sa.Column("key_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("team_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("tags", _json(), nullable=True))

    op.create_table(
        "teams",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("team_alias", sa.String(), nullable=True),
        sa.Column("models", _json(), nullable=False),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("blocked", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_budgeted(),
        sa.PrimaryKeyConstraint("team_id", name="pk_teams"),
    )
    op.create_table(
        "internal_users",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("user_alias", sa.String(), nullable=True),
        sa.Column("user_email", sa.String(), nullable=True),
        sa.Column("user_role", sa.String(), nullable=True),
        sa.Column("models", _json(), nullable=False),
        *_budgeted(),
        sa.PrimaryKeyConstraint("user_id", name="pk_internal_users"),
    )
    op.create_table(
        "team_memberships",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.team_id"], name="fk_team_memberships_team_id_teams",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["internal_users.user_id"],
                                name="fk_team_memberships_user_id_internal_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_team_memberships"),
    )
    op.create_index("ix_team_memberships_user_id", "team_memberships", ["user_id"])
    op.create_table(
        "tags",
        sa.Column("tag_name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("models", _json(), nullable=True),
        *_budgeted(),
        sa.PrimaryKeyConstraint("tag_name", name="pk_tags"),
    )
    op.create_table(
        "spend_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False) for name in DIMENSIONS),
        *_measures(),
        sa.PrimaryKeyConstraint("bucket", *DIMENSIONS, name="pk_spend_rollups"),
    )
    op.create_table(
        "spend_tag_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("bucket", "tag", name="pk_spend_tag_rollups"),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("changed_by", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("table_name", sa.String(), nullable=False),
        sa.Column("object_id", sa.String(), nullable=False),
        sa.Column("before_value", _json(), nullable=True),
        sa.Column("updated_values", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_logs"),
    )
    op.create_index("ix_audit_logs_updated_at", "audit_logs", ["updated_at"])
    op.create_index("ix_audit_logs_table_name_object_id", "audit_logs", ["table_name", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_logs_table_name_object_id", table_name="audit_logs")
    op.drop_index("ix_audit_logs_updated_at", table_name="audit_logs")
    for table in ("audit_logs", "spend_tag_rollups", "spend_rollups", "tags"):
        op.drop_table(table)
    op.drop_index("ix_team_memberships_user_id", table_name="team_memberships")
    for table in ("team_memberships", "internal_users", "teams"):
        op.drop_table(table)
    with op.batch_alter_table("spend_logs") as batch:
        for column in ("tags", "team_id", "key_id"):
            batch.drop_column(column)
    with op.batch_alter_table("verification_tokens") as batch:
        batch.drop_index("ix_verification_tokens_team_id")
        batch.drop_constraint("uq_verification_tokens_previous_token", type_="unique")
        batch.drop_constraint("uq_verification_tokens_key_id", type_="unique")
        for column in ("previous_token_expires", "previous_token", "tags", "team_id", "key_id"):
            batch.drop_column(column)
