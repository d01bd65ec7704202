"""The governance's background task: budget resets at a random interval (so replicas do not sweep together),
the proxy budget's spend refreshed, Redis releases that failed retried, expired counters pruned."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from ..limits import LocalCounters
from ..settings import GeneralSettings
from .budgets import ProxyBudgets
from .checks import CallChecks


class Upkeep:
    def __init__(self, general: GeneralSettings, budgets: ProxyBudgets, checks: CallChecks, local: LocalCounters,
                 database_ready: Callable[[], bool] = lambda: True) -> None:
        low, high = sorted((general.proxy_budget_rescheduler_min_time, general.proxy_budget_rescheduler_max_time))
        self.reset_every = (low, high)
        """Seconds between budget-reset sweeps, drawn anew each time."""
        self.tick = max(0.2, min(5.0, general.key_cache_ttl, low))
        self.budgets, self.checks, self.local = budgets, checks, local
        self.database_ready = database_ready
        """False while the database was unreachable since start-up: the first sweep waits for it."""
        self._swept = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="governance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def first_sweep(self) -> None:
        """Budgets due reset, and the proxy budget's row made to carry the configured budget."""
        self._swept = True
        await self.budgets.reset_due()
        await self.budgets.sync()

    async def _run(self) -> None:
        next_reset = time.monotonic() + random.uniform(*self.reset_every)
        while True:
            await asyncio.sleep(self.tick)
            if not self._swept:
                if self.database_ready():
                    await self.first_sweep()
                continue
            if time.monotonic() >= next_reset:
                await self.budgets.reset_due()
                next_reset = time.monotonic() + random.uniform(*self.reset_every)
            await self.budgets.load()
            await self.checks.retry_releases()
            self.local.prune()
