"""Spend rollups: end-users move to a rollup of their own (day × end-user × model), so the main rollup stays as
small as the admin-made dimensions; buckets are UTC days (hours made a month's report read hundreds of
thousands of rows); every rollup gets the result cache's savings (`cost_saved`); and the
rollups are rebuilt from the spend logs already stored (rows from before migration 0003 included: their key
is found by its hash), so reports cover history from before the upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
DIMENSIONS = ("key_id", "team_id", "user_id", "model_alias", "deployment", "provider")
MEASURES = ("requests", "errors", "spend", "search_units", "input_tokens", "total_tokens", "cost_saved")
BATCH = 5000


def _measures() -> list[sa.Column]:
    return [
        sa.Column("requests", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("errors", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("spend", sa.Numeric(20, 10), server_default=ZERO, nullable=False),
        sa.Column("search_units", sa.Float(), server_default=ZERO, nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("cost_saved", sa.Numeric(20, 10), server_default=ZERO, nullable=False),
    ]


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("spend_rollups")
    op.create_table(
        "spend_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False) for name in DIMENSIONS),
        *_measures(),
        sa.PrimaryKeyConstraint("bucket", *DIMENSIONS, name="pk_spend_rollups"),
    )
    op.create_table(
        "spend_end_user_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        sa.Column("end_user", sa.String(), nullable=False),
        sa.Column("model_alias", sa.String(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("bucket", "end_user", "model_alias", name="pk_spend_end_user_rollups"),
    )
    op.drop_table("spend_tag_rollups")
    op.create_table(
        "spend_tag_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("bucket", "tag", name="pk_spend_tag_rollups"),
    )
    _rebuild(op.get_bind())


def _rebuild(connection: sa.Connection) -> None:
    """Aggregate every stored spend row into the three rollups (streamed; memory grows with the groups)."""
    typed = (sa.column("started_at", _ts()), sa.column("tags", sa.JSON()))
    logs = sa.table("spend_logs", *typed, *(sa.column(c) for c in (
        "key_hash", "key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider", "status",
        "cost", "cost_saved", "search_units", "input_tokens", "total_tokens")))
    sqlite = connection.dialect.name == "sqlite"
    keys = sa.table("verification_tokens", sa.column("token"), sa.column("key_id"))
    key_ids = dict(connection.execute(sa.select(keys.c.token, keys.c.key_id)).all())
    groups: dict[str, dict[tuple[Any, ...], list[Any]]] = {name: defaultdict(lambda: [0, 0, Decimal(0), 0.0, 0, 0,
                                                                                        Decimal(0)])
                                                           for name in ("main", "end_user", "tag")}
    result = connection.execute(sa.select(logs).execution_options(yield_per=BATCH))
    for row in result:
        started = _aware(row.started_at)
        bucket = started.replace(hour=0, minute=0, second=0, microsecond=0)
        if sqlite:  # stored naive UTC there, as the tables' UTCDateTime does
            bucket = bucket.replace(tzinfo=None)
        key_id = row.key_id or key_ids.get(row.key_hash) or ""
        targets = [groups["main"][(bucket, key_id, row.team_id or "", row.user_id or "", row.model_alias or "",
                                   row.deployment or "", row.provider or "")]]
        if row.end_user:
            targets.append(groups["end_user"][(bucket, row.end_user, row.model_alias or "")])
        tags = row.tags if isinstance(row.tags, list) else []
        targets += [groups["tag"][(bucket, tag)] for tag in dict.fromkeys(tags) if isinstance(tag, str)]
        for m in targets:
            m[0] += 1
            m[1] += row.status >= 400
            m[2] += Decimal(str(row.cost or 0))
            m[3] += row.search_units or 0.0
            m[4] += row.input_tokens or 0
            m[5] += row.total_tokens or 0
            m[6] += Decimal(str(row.cost_saved or 0))
    for name, table, key in (("main", "spend_rollups", ("bucket", *DIMENSIONS)),
                             ("end_user", "spend_end_user_rollups", ("bucket", "end_user", "model_alias")),
                             ("tag", "spend_tag_rollups", ("bucket", "tag"))):
        target = sa.table(table, sa.column("bucket", _ts()), *(sa.column(c, sa.String()) for c in key[1:]),
                          *(sa.column(c.name, c.type) for c in _measures()))
        rows = [{**dict(zip(key, k, strict=True)), **dict(zip(MEASURES, m, strict=True))}
                for k, m in groups[name].items()]
        for start in range(0, len(rows), BATCH):
            connection.execute(target.insert(), rows[start:start + BATCH])


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite without the column type: "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    op.drop_table("spend_end_user_rollups")
    for table in ("spend_rollups", "spend_tag_rollups"):
        op.drop_table(table)
    op.create_table(
        "spend_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False)
          for name in ("key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider")),
        *_measures()[:-1],
        sa.PrimaryKeyConstraint("bucket", "key_id", "team_id", "user_id", "end_user", "model_alias", "deployment",
                                "provider", name="pk_spend_rollups"),
    )
    op.create_table(
        "spend_tag_rollups",
        sa.Column("bucket", _ts(), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        *_measures()[:-1],
        sa.PrimaryKeyConstraint("bucket", "tag", name="pk_spend_tag_rollups"),
    )
