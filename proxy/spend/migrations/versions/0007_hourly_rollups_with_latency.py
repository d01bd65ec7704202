"""Spend rollups by the hour with every dimension and a latency histogram: `spend_rollups` keys on the hour ×
key, team, user, end-user, model, deployment and provider, and `spend_tag_rollups` on the same plus the tag,
so reports group by any combination of them per hour or day; both count requests per latency bucket
(`lat00`–`lat49`, see `proxy.spend.latency`) for p50/p99. The per-end-user rollup goes (its rows are in the
main one now). Both are rebuilt from the spend logs already stored, an hour at a time (rows read in
`started_at` order, so memory holds one hour's groups). `spend_logs.key_id` gets an index (`/spend/logs?api_key=`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
DIMENSIONS = ("key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider")
MEASURES = ("requests", "errors", "spend", "search_units", "input_tokens", "total_tokens", "cost_saved")
BUCKETS = 50  # as proxy.spend.latency at this revision: <1 ms, three per doubling to 2^16 ms, then the rest
LATENCY = tuple(f"lat{i:02d}" for i in range(BUCKETS))
BATCH = 5000
OLD_DIMENSIONS = ("key_id", "team_id", "user_id", "model_alias", "deployment", "provider")


def _bucket_of(ms: float) -> int:
    if not ms >= 1.0:
        return 0
    if ms >= 2.0**16:
        return BUCKETS - 1
    return int(math.log2(ms) * 3) + 1


def _measures(latency: bool = True) -> list[sa.Column]:
    return [
        sa.Column("requests", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("errors", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("spend", sa.Numeric(20, 10), server_default=ZERO, nullable=False),
        sa.Column("search_units", sa.Float(), server_default=ZERO, nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default=ZERO, nullable=False),
        sa.Column("cost_saved", sa.Numeric(20, 10), server_default=ZERO, nullable=False),
        *(sa.Column(name, sa.Integer(), server_default=ZERO, nullable=False) for name in LATENCY if latency),
    ]


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _create(table: str, key: tuple[str, ...], latency: bool = True) -> None:
    op.create_table(table, sa.Column("bucket", _ts(), nullable=False),
                    *(sa.Column(name, sa.String(), nullable=False) for name in key), *_measures(latency),
                    sa.PrimaryKeyConstraint("bucket", *key, name=f"pk_{table}"))


def upgrade() -> None:
    for table in ("spend_rollups", "spend_end_user_rollups", "spend_tag_rollups"):
        op.drop_table(table)
    _create("spend_rollups", DIMENSIONS)
    _create("spend_tag_rollups", ("tag", *DIMENSIONS))
    op.create_index("ix_spend_logs_key_id", "spend_logs", ["key_id"])
    _rebuild(op.get_bind())


def _target(name: str, key: tuple[str, ...], latency: bool = True) -> sa.TableClause:
    return sa.table(name, sa.column("bucket", _ts()), *(sa.column(c, sa.String()) for c in key),
                    *(sa.column(c.name, c.type) for c in _measures(latency)))


def _rebuild(connection: sa.Connection) -> None:
    """Aggregate every stored spend row into the two rollups, writing each hour's groups once it is complete."""
    typed = (sa.column("started_at", _ts()), sa.column("tags", sa.JSON()))
    logs = sa.table("spend_logs", *typed, *(sa.column(c) for c in (
        "key_hash", "key_id", "team_id", "user_id", "end_user", "model_alias", "deployment", "provider", "status",
        "cost", "cost_saved", "search_units", "input_tokens", "total_tokens", "latency_ms")))
    sqlite = connection.dialect.name == "sqlite"
    keys = sa.table("verification_tokens", sa.column("token"), sa.column("key_id"))
    key_ids = dict(connection.execute(sa.select(keys.c.token, keys.c.key_id)).all())
    targets = (_target("spend_rollups", DIMENSIONS), _target("spend_tag_rollups", ("tag", *DIMENSIONS)))
    rows = connection.execute(sa.select(logs).order_by(logs.c.started_at).execution_options(yield_per=BATCH))
    for hour, main, tagged in _hours(rows, key_ids):
        stored = hour.replace(tzinfo=None) if sqlite else hour  # naive UTC on SQLite, as UTCDateTime stores it
        for target, groups, key in ((targets[0], main, DIMENSIONS), (targets[1], tagged, ("tag", *DIMENSIONS))):
            values = [{"bucket": stored, **dict(zip(key, k, strict=True)),
                       **dict(zip((*MEASURES, *LATENCY), m, strict=True))} for k, m in groups.items()]
            for start in range(0, len(values), BATCH):
                connection.execute(target.insert(), values[start:start + BATCH])


Groups = dict[tuple[str, ...], list[Any]]


def _hours(rows: Any, key_ids: dict[str, str]) -> Iterator[tuple[datetime, Groups, Groups]]:
    def empty() -> Groups:
        return defaultdict(lambda: [0, 0, Decimal(0), 0.0, 0, 0, Decimal(0), *([0] * BUCKETS)])

    hour: datetime | None = None
    main, tagged = empty(), empty()
    for row in rows:
        started = _aware(row.started_at).replace(minute=0, second=0, microsecond=0)
        if started != hour:
            if hour is not None:
                yield hour, main, tagged
            hour, main, tagged = started, empty(), empty()
        dimensions = (row.key_id or key_ids.get(row.key_hash) or "", row.team_id or "", row.user_id or "",
                      row.end_user or "", row.model_alias or "", row.deployment or "", row.provider or "")
        tags = row.tags if isinstance(row.tags, list) else []
        latency = len(MEASURES) + _bucket_of(float(row.latency_ms))
        for m in [main[dimensions], *(tagged[(tag, *dimensions)] for tag in dict.fromkeys(tags)
                                      if isinstance(tag, str))]:
            m[0] += 1
            m[1] += row.status >= 400
            m[2] += Decimal(str(row.cost or 0))
            m[3] += row.search_units or 0.0
            m[4] += row.input_tokens or 0
            m[5] += row.total_tokens or 0
            m[6] += Decimal(str(row.cost_saved or 0))
            m[latency] += 1
    if hour is not None:
        yield hour, main, tagged


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite without the column type: "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    """Back to 0006's daily rollups, summed from the hourly ones (latency histograms are dropped)."""
    connection = op.get_bind()
    hourly, tagged = _target("spend_rollups", DIMENSIONS), _target("spend_tag_rollups", ("tag", *DIMENSIONS))
    olds = {"spend_rollups": (OLD_DIMENSIONS, hourly), "spend_end_user_rollups": (("end_user", "model_alias"), hourly),
            "spend_tag_rollups": (("tag",), tagged)}
    kept: dict[str, list[dict[str, Any]]] = {}
    for name, (key, source) in olds.items():
        day = (sa.func.substr(source.c.bucket, 1, 10) if connection.dialect.name == "sqlite"
               else sa.func.date_trunc("day", sa.func.timezone("UTC", source.c.bucket))).label("day")
        sums = [sa.func.sum(source.c[m]).label(m) for m in MEASURES]
        statement = sa.select(day, *(source.c[k] for k in key), *sums).group_by(day, *(source.c[k] for k in key))
        if name == "spend_end_user_rollups":
            statement = statement.where(source.c.end_user != "")
        kept[name] = [{**{k: v for k, v in row._mapping.items() if k != "day"}, "bucket": _day(row.day)}
                      for row in connection.execute(statement)]
    op.drop_index("ix_spend_logs_key_id", table_name="spend_logs")
    for table in ("spend_rollups", "spend_tag_rollups"):
        op.drop_table(table)
    for name, (key, _) in olds.items():
        _create(name, key, latency=False)
        rows = kept[name]
        if connection.dialect.name == "sqlite":
            rows = [{**row, "bucket": row["bucket"].replace(tzinfo=None)} for row in rows]
        for start in range(0, len(rows), BATCH):
            connection.execute(_target(name, key, latency=False).insert(), rows[start:start + BATCH])


def _day(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return _aware(value).replace(hour=0, minute=0, second=0, microsecond=0)
