"""`Reports`: spend aggregated over the hourly rollups (never a scan of spend logs), so reports stay fast on
millions of rows and survive log retention.

Dimensions: key (its stable `key_id`), team, user, end_user, model (the alias asked for), deployment, provider
and tag — any combination, grouped or filtered (with tag the tag rollup is read: a request with two tags
counts under each). Periods are UTC hours, days (their hours summed) or the whole range; a range covers every
hour it touches (the rollups keep hours), `end` itself excluded.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select

from .aggregates import MEASURES, hour_of
from .latency import COLUMNS as LATENCY_COLUMNS
from .tables import spend_model_rollups, spend_rollups, spend_tag_rollups, verification_tokens
from .transactions import Transactions, check_aware, chunks

DIMENSIONS = {"key": "key_id", "team": "team_id", "user": "user_id", "end_user": "end_user", "tag": "tag",
              "model": "model_alias", "deployment": "deployment", "provider": "provider"}
"""Report name → rollup column."""
TABLES = ((spend_model_rollups, frozenset({"model", "deployment", "provider"})),
          (spend_rollups, frozenset(DIMENSIONS) - {"tag"}),
          (spend_tag_rollups, frozenset(DIMENSIONS)))
"""Each rollup and the dimensions it can group and filter by; a report reads the first (smallest) that has
them all. Requests without tags are only in the first two."""
GRANULARITIES = ("hour", "day", "all")


class Reports(Transactions):
    def spend_report(self, *, group_by: list[str], granularity: str = "day", start: datetime | None = None,
                     end: datetime | None = None, filters: dict[str, str] | None = None,
                     limit: int = 10_000, latency: bool = False) -> list[dict[str, Any]]:
        """One row per period and group: the dimensions, `period` (an ISO date for "day", the hour's ISO
        datetime for "hour"; absent for "all") and the measures (requests, errors, spend, search_units,
        input_tokens, total_tokens, cost_saved), by period then spend; with `latency`, `latency_histogram`
        too (requests per bucket of `proxy.spend.latency`)."""
        check_aware(start)
        check_aware(end)
        wanted = {*group_by, *(filters or {})}
        unknown = sorted(wanted - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension(s): {', '.join(unknown)}; use {', '.join(DIMENSIONS)}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
        table = next(t for t, has in TABLES if wanted <= has)
        columns = {name: table.c[DIMENSIONS[name]] for name in group_by}
        conditions: list[ColumnElement[bool]] = [table.c[DIMENSIONS[name]] == value
                                                 for name, value in (filters or {}).items()]
        if start is not None:
            conditions.append(table.c.bucket >= hour_of(start))
        if end is not None:
            conditions.append(table.c.bucket < end)
        period = self._period(table, granularity)
        keys = [*([period.label("period")] if period is not None else []), *(c.label(n) for n, c in columns.items())]
        sums = [func.sum(table.c[m]).label(m) for m in (*MEASURES, *(LATENCY_COLUMNS if latency else ()))]
        statement = (select(*keys, *sums).where(*conditions).group_by(*(k.element for k in keys))
                     .order_by(*(k.element for k in keys[:1] if period is not None), func.sum(table.c.spend).desc())
                     .limit(limit))
        with self._read() as connection:
            result = connection.execute(statement)
            names, found = list(result.keys()), result.all()
        width = len(names) - (len(LATENCY_COLUMNS) if latency else 0)
        rows = []
        for found_row in found:  # plain tuples: dict(row._mapping) of ~60 columns took most of a report's time
            values = tuple(found_row)
            row = dict(zip(names[:width], values[:width], strict=True))
            for name in columns:
                row[name] = row[name] or None
            if granularity == "hour":
                row["period"] = row["period"].isoformat()
            elif period is not None:
                row["period"] = str(row["period"])
            if latency:
                row["latency_histogram"] = list(values[width:])
            row["spend"] = Decimal(row["spend"] or 0)
            row["cost_saved"] = Decimal(row["cost_saved"] or 0)
            rows.append(row)
        return rows

    def _period(self, table: Table, granularity: str) -> Any:
        bucket = table.c.bucket
        if granularity == "all":
            return None
        if granularity == "hour":
            return bucket
        if self.engine.dialect.name == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC)
            return func.substr(bucket, 1, 10)
        return func.to_char(func.timezone("UTC", bucket), "YYYY-MM-DD")

    def key_tokens(self, key_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """key_id → (current digest, alias) for the keys that still exist."""
        found: dict[str, tuple[str, str | None]] = {}
        c = verification_tokens.c
        with self._read() as connection:
            for chunk in chunks(key_ids):
                for key_id, token, alias in connection.execute(
                        select(c.key_id, c.token, c.key_alias).where(c.key_id.in_(chunk))):
                    found[key_id] = (token, alias)
        return found

