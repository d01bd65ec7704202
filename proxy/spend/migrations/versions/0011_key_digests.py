"""`key_digests`: every digest each key has had, so `/spend/logs?api_key=` finds a key's rows from before its
rotations through the `key_hash` index, and the index on `spend_logs.key_id` (0007) goes: it was a seventh
B-tree every spend row was inserted into (~10% of the SQLite writer's CPU per row). Filled from the keys'
current and previous digests and from the (digest, key_id) pairs of the stored spend rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_digests",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("token", "key_id", name="pk_key_digests"),
    )
    op.create_index("ix_key_digests_key_id", "key_digests", ["key_id"])
    keys = sa.table("verification_tokens", sa.column("token"), sa.column("previous_token"), sa.column("key_id"))
    logs = sa.table("spend_logs", sa.column("key_hash"), sa.column("key_id"))
    pairs = sa.union(  # UNION: each pair once
        sa.select(keys.c.token, keys.c.key_id),
        sa.select(keys.c.previous_token, keys.c.key_id).where(keys.c.previous_token.is_not(None)),
        sa.select(logs.c.key_hash, logs.c.key_id).where(logs.c.key_hash.is_not(None), logs.c.key_id.is_not(None)),
    )
    op.execute(sa.table("key_digests", sa.column("token"), sa.column("key_id")).insert()
               .from_select(["token", "key_id"], pairs))
    op.drop_index("ix_spend_logs_key_id", table_name="spend_logs")


def downgrade() -> None:
    op.create_index("ix_spend_logs_key_id", "spend_logs", ["key_id"])
    op.drop_index("ix_key_digests_key_id", table_name="key_digests")
    op.drop_table("key_digests")
