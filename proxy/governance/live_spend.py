"""What the admin API's info reads add to a stored record: live spend (the database, this process's ledger and
Redis, whichever knows more), the remaining budget, and the end of the current budget period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..limits import LocalCounters, RedisCounters, current_period
from ..redis_link import RedisLink
from .budgets import ProxyBudgets


class LiveSpend:
    def __init__(self, local: LocalCounters, link: RedisLink | None, budgets: ProxyBudgets,
                 clock: Callable[[], datetime]) -> None:
        self.local, self.link, self.budgets, self.clock = local, link, budgets, clock
        self.shared = RedisCounters(link.prefix) if link is not None else None

    async def describe_key(self, info: dict[str, Any], record: Any) -> dict[str, Any]:
        return await self._describe(info, f"key:{record.key_id}", record, record.max_budget)

    async def describe_holder(self, info: dict[str, Any], kind: str, record: Any) -> dict[str, Any]:
        """`describe_key` for a team, internal user or tag (`kind`: "team", "user", "tag")."""
        ident = {"team": "team_id", "user": "user_id", "tag": "tag_name"}[kind]
        return await self._describe(info, f"{kind}:{getattr(record, ident)}", record, record.max_budget)

    async def describe_end_user(self, info: dict[str, Any], record: Any) -> dict[str, Any]:
        budget = record.max_budget if record.max_budget is not None else self.budgets.default_end_user
        return await self._describe(info, f"end_user:{record.user_id}", record, budget)

    async def _describe(self, info: dict[str, Any], counter: str, record: Any, budget: Any) -> dict[str, Any]:
        now = self.clock()
        period, spend = current_period(record.budget_reset_at, record.budget_duration, record.spend, now)
        known = [spend, self.local.spent(counter, period)]
        link, shared = self.link, self.shared
        if link is not None and shared is not None and (client := link.client()) is not None:
            try:
                known.append(await shared.spent(client, counter, period))
            except link.errors as exc:
                link.failed(exc)
            else:
                link.ok()
        spend = max(v for v in known if v is not None)
        info["spend"] = float(spend)
        info["budget_reset_at"] = period
        if budget is not None:
            info["remaining_budget"] = float(Decimal(budget) - spend)
        return info
