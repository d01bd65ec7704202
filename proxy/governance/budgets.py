"""The proxy-wide budget (general_settings, else litellm_settings) and its row in the database.

The request path reads `current` (the budget with the spend the database last reported); `sync` makes the
stored row carry the configured budget at start, `load` refreshes the spend, `reset_due` starts the new
period of every key, end-user and proxy budget whose period ended. A database that does not answer is
logged and retried on the next round: the proxy keeps enforcing from what it counted itself.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from ..config_loading import Settings
from ..limits import ProxyBudget

log = logging.getLogger("proxy.governance")


class ProxyBudgets:
    def __init__(self, settings: Settings, store: Any) -> None:
        general, lite = settings.general, settings.config.litellm_settings
        self.store = store
        budget: float | None
        if general.max_budget is not None:
            budget, duration = general.max_budget, general.budget_duration
        else:
            budget, duration = lite.max_budget, lite.budget_duration
        self.max_budget = Decimal(str(budget)) if budget is not None else None
        self.duration = duration
        default = general.max_end_user_budget if general.max_end_user_budget is not None else lite.max_end_user_budget
        self.default_end_user = Decimal(str(default)) if default is not None else None
        """The budget of end-users without their own (never reset)."""
        self.current: ProxyBudget | None = None
        """The proxy-wide budget and the spend the database last reported; None without one."""

    async def reset_due(self) -> None:
        try:
            counts = await asyncio.to_thread(self.store.reset_budgets)
        except Exception as exc:  # retried on the next round
            log.warning("budget reset failed (%s); retrying later", type(exc).__name__)
            return
        if any(counts.values()):
            log.info("budgets reset: %s", counts)

    async def sync(self) -> None:
        """Make the proxy-wide row carry the configured budget (keeping its period when unchanged)."""
        if self.max_budget is None:
            return
        try:
            record = await asyncio.to_thread(self.store.get_proxy_spend)
            if (record is None or record.max_budget is None or Decimal(record.max_budget) != self.max_budget
                    or record.budget_duration != self.duration):
                await asyncio.to_thread(self.store.set_proxy_budget, max_budget=self.max_budget,
                                        budget_duration=self.duration)
        except Exception as exc:
            log.warning("cannot store the proxy budget (%s); enforcing it from this process's count",
                        type(exc).__name__)
        self.current = ProxyBudget(self.max_budget, self.duration)
        await self.load()

    async def load(self) -> None:
        if self.max_budget is None:
            return
        try:
            record = await asyncio.to_thread(self.store.get_proxy_spend)
        except Exception as exc:
            log.warning("cannot read the proxy spend (%s)", type(exc).__name__)
            return
        if record is not None:
            self.current = ProxyBudget(self.max_budget, self.duration, Decimal(record.spend),
                                       record.budget_reset_at if record.budget_duration == self.duration else None)
