"""`Retention`: deletes spend rows older than `general_settings.maximum_spend_logs_retention_period` in the
background, in small batches (each its own short transaction, with a pause between them) so the spend writer
and readers never wait long behind it. Rollups and running totals are kept: reports and budgets survive.

Every worker may run it; a batch deletes what is there, so two workers at once only share the work.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import delete, select

from ..periodic import repeat
from .durations import Duration
from .gate import Deadline
from .tables import spend_logs
from .transactions import Transactions, check_aware

log = logging.getLogger("proxy.spend.retention")

BATCH = 1000
PAUSE = 0.05
"""Seconds between two batches: other transactions get the database in between."""
DEADLINE = 10.0
"""Seconds one batch may take (PostgreSQL's statement_timeout is the same); then the round ends, logged."""


class RetentionQueries(Transactions):
    def delete_spend_logs_before(self, cutoff: datetime, limit: int) -> int:
        """Delete at most `limit` spend rows that started before `cutoff` (oldest first); how many went."""
        check_aware(cutoff)
        c = spend_logs.c
        oldest = select(c.request_id).where(c.started_at < cutoff).order_by(c.started_at).limit(limit)
        with self._write() as connection:
            return connection.execute(delete(spend_logs).where(c.request_id.in_(oldest.scalar_subquery()))).rowcount


class Retention:
    def __init__(self, store: RetentionQueries, period: Duration, interval: float, *, batch: int = BATCH) -> None:
        self.store = store
        self.period = period
        self.interval = interval
        self.batch = batch
        self.deleted = 0
        self._call = Deadline(DEADLINE, serial=True)  # a hung database holds one thread, not one per round
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="spend-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete every row that started before `now - period` (now: the current time), batch by batch."""
        cutoff = self.period.before(now or datetime.now(UTC))
        removed = 0
        while True:
            count = await self._call(self.store.delete_spend_logs_before, cutoff, self.batch)
            removed += count
            if count < self.batch:
                break
            await asyncio.sleep(PAUSE)
        self.deleted += removed
        return removed

    async def _step(self) -> None:
        removed = await self.sweep()
        if removed:
            log.info("spend log retention: deleted %d rows", removed)

    async def _run(self) -> None:
        await repeat(self.interval, self._step, log, first=0,
                     failing="spend log retention sweep failed (%s); retrying every interval",
                     recovered="spend log retention sweeps again")
