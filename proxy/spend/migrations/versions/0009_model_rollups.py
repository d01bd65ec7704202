"""`spend_model_rollups`: the hourly rollup summed over all but model, deployment and provider (a few rows an
hour), so the admin UI's day and 30-day charts and reports by those alone do not read the all-dimension
rollup. Filled from `spend_rollups`, which holds every spend row since migration 0007 rebuilt it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
KEY = ("model_alias", "deployment", "provider")
SUMMED = ("requests", "errors", "spend", "search_units", "input_tokens", "total_tokens", "cost_saved",
          *(f"lat{i:02d}" for i in range(50)))  # lat00–lat49: proxy.spend.latency's buckets at this revision


def upgrade() -> None:
    money = sa.Numeric(20, 10)
    types: dict[str, Any] = {"spend": money, "cost_saved": money, "search_units": sa.Float(),
                             "input_tokens": sa.BigInteger(), "total_tokens": sa.BigInteger()}
    op.create_table(
        "spend_model_rollups",
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False) for name in KEY),
        *(sa.Column(name, types.get(name, sa.Integer()), server_default=ZERO, nullable=False) for name in SUMMED),
        sa.PrimaryKeyConstraint("bucket", *KEY, name="pk_spend_model_rollups"),
    )
    source = sa.table("spend_rollups", *(sa.column(name) for name in ("bucket", *KEY, *SUMMED)))
    target = sa.table("spend_model_rollups", *(sa.column(name) for name in ("bucket", *KEY, *SUMMED)))
    grouped = (source.c.bucket, *(source.c[name] for name in KEY))
    op.execute(target.insert().from_select(
        ["bucket", *KEY, *SUMMED],
        sa.select(*grouped, *(sa.func.sum(source.c[name]) for name in SUMMED)).group_by(*grouped)))


def downgrade() -> None:
    op.drop_table("spend_model_rollups")
