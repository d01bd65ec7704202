"""`Activity`: reading spend rows — one page of them (`GET /spend/logs`, the UI's Logs), and their sums over
time for the admin UI's charts and its models page.

The sums run in the database (GROUP BY a time bucket), so a page moves one row per bucket and model, not
one per request. Latency percentiles need the values themselves: `latencies` reads at most `limit` of the
newest rows of the window (indexed by `started_at`), so a busy window costs a bounded read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, or_, select

from .records import SpendLogRecord
from .tables import key_digests, spend_logs
from .transactions import Transactions, check_aware


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    model_alias: str
    requests: int
    errors: int
    spend: Decimal
    saved: Decimal


class Activity(Transactions):
    def spend_logs(
        self,
        *,
        api_key_hash: str | None = None,
        key_id: str | None = None,
        end_user: str | None = None,
        model: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        team_id: str | None = None,
        failed: bool | None = None,
        page: int = 1,
        size: int = 100,
    ) -> tuple[list[SpendLogRecord], int]:
        """One page (1-based) of spend logs, newest first, and the total matching. `start` is inclusive,
        `end` exclusive; `model` matches the model alias the caller asked for; `failed` picks status >= 400
        (True) or below (False); with `key_id`, a key's rows are found under its stable id as well as under
        `api_key_hash`."""
        check_aware(start)
        check_aware(end)
        c = spend_logs.c
        conditions: list[ColumnElement[bool]] = []
        if api_key_hash is not None and key_id is not None:  # rows from before and after the key's rotations
            # found through the key_hash index under every digest the key has had (spend_logs.key_id has none)
            with self._read() as connection:
                digests = connection.execute(select(key_digests.c.token).where(key_digests.c.key_id == key_id))
                conditions.append(c.key_hash.in_(sorted({api_key_hash, *digests.scalars()})))
            conditions.append(or_(c.key_id == key_id, c.key_hash == api_key_hash))
        elif api_key_hash is not None:
            conditions.append(c.key_hash == api_key_hash)
        if end_user is not None:
            conditions.append(c.end_user == end_user)
        if model is not None:
            conditions.append(c.model_alias == model)
        if team_id is not None:
            conditions.append(c.team_id == team_id)
        if failed is not None:
            conditions.append(c.status >= 400 if failed else c.status < 400)
        if start is not None:
            conditions.append(c.started_at >= start)
        if end is not None:
            conditions.append(c.started_at < end)
        rows, total = self._page(
            spend_logs, conditions, (c.started_at.desc(), c.request_id.desc()), page, size
        )
        return [SpendLogRecord(**row) for row in rows], total

    def _epoch(self) -> Any:
        column = spend_logs.c.started_at
        if self.engine.dialect.name == "sqlite":
            return cast(func.strftime("%s", column), Integer)
        return cast(func.floor(func.extract("epoch", column)), Integer)

    def activity(self, start: datetime, end: datetime, bucket_seconds: int) -> list[Bucket]:
        """Requests, errors, spend and cache savings per `bucket_seconds` and model alias in [start, end)."""
        check_aware(start)
        check_aware(end)
        c = spend_logs.c
        bucket = (self._epoch() // bucket_seconds).label("bucket")
        query = (select(bucket, c.model_alias, func.count(), func.sum(case((c.status >= 400, 1), else_=0)),
                        func.sum(c.cost), func.sum(c.cost_saved))
                 .where(c.started_at >= start, c.started_at < end)
                 .group_by(bucket, c.model_alias).order_by(bucket))
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [Bucket(datetime.fromtimestamp(int(b) * bucket_seconds, UTC), alias, int(n), int(errors or 0),
                       Decimal(str(spend or 0)), Decimal(str(saved or 0)))
                for b, alias, n, errors, spend, saved in rows]

    def latencies(self, start: datetime, end: datetime, limit: int = 50_000) -> list[tuple[datetime, float]]:
        """(started_at, latency_ms) of the newest `limit` requests in [start, end)."""
        c = spend_logs.c
        with self._read() as connection:
            rows = connection.execute(select(c.started_at, c.latency_ms)
                                      .where(c.started_at >= start, c.started_at < end)
                                      .order_by(c.started_at.desc()).limit(limit)).all()
        return [(row[0], float(row[1])) for row in rows]

    def deployment_activity(self, since: datetime) -> dict[str, tuple[int, int, float]]:
        """Deployment id → (requests, errors, mean latency ms) since `since`."""
        check_aware(since)
        c = spend_logs.c
        with self._read() as connection:
            rows = connection.execute(
                select(c.deployment, func.count(), func.sum(case((c.status >= 400, 1), else_=0)),
                       func.avg(c.latency_ms))
                .where(c.started_at >= since, c.deployment.is_not(None)).group_by(c.deployment)).all()
        return {d: (int(n), int(e or 0), float(lat or 0)) for d, n, e, lat in rows}

    def spend_log(self, request_id: str) -> SpendLogRecord | None:
        with self._read() as connection:
            row = connection.execute(select(spend_logs).where(spend_logs.c.request_id == request_id)).one_or_none()
        return None if row is None else SpendLogRecord(**row._mapping)
