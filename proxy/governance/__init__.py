"""Governance: guardrails, rate limits and budgets around every rerank call.

Four jobs, one module each: `checks.py` is the engine's `Checks` hook (guardrails on the query, then every
limit of the call taken at once); `budgets.py` holds the proxy-wide budget and keeps it in step with the
database; `upkeep.py` is the background task (budget resets, retried Redis releases, pruning); `live_spend.py`
answers the admin API's reads (live spend, remaining budget). `Governance` builds the parts they share once,
and starts and stops them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from ..config_loading import Settings
from ..guardrails import GuardrailChain
from ..limits import EndUserRecords, LocalCounters
from ..redis_link import RedisLink
from ..routing import Router
from ..spend.holders import TAG
from ..spend.key_changes import END_USER
from ..spend.key_changes import TAG as TAG_CHANGE
from .budgets import ProxyBudgets
from .checks import CallChecks
from .live_spend import LiveSpend
from .upkeep import Upkeep

utc_now: Callable[[], datetime] = partial(datetime.now, UTC)
"""The default clock: a partial of the C function, no Python frame per call."""


class Governance:
    def __init__(self, settings: Settings, store: Any, router: Router, gate: Any,
                 clock: Callable[[], datetime] | None = None, link: RedisLink | None = None) -> None:
        """`gate`: the `DatabaseGate` end-user records are read through (a stalled database never stalls a call);
        `link`: the process's Redis, which its owner closes (None: limits count in this process)."""
        self.settings = settings
        self.clock = clock or utc_now
        """Wall-clock time for limits and budgets (minutes, windows, periods); tests inject their own."""
        self.local = LocalCounters()
        self.gate = gate
        self.end_users = EndUserRecords(gate, settings.general.key_cache_ttl)
        self.tags = EndUserRecords(gate, settings.general.key_cache_ttl, kind="tag",
                                   fetch=lambda name: gate.store.get_holder(TAG, name))
        self.link = link
        self.budgets = ProxyBudgets(settings, store)
        self.checks = CallChecks(router, self.local, self.end_users, self.link, self.budgets, self.clock, self.tags)
        self.live_spend = LiveSpend(self.local, self.link, self.budgets, self.clock)
        self.upkeep = Upkeep(settings.general, self.budgets, self.checks, self.local,
                             database_ready=lambda: gate.connected)

    @property
    def chain(self) -> GuardrailChain:
        return self.checks.chain

    @property
    def proxy_budget(self) -> Decimal | None:
        return self.budgets.max_budget

    @property
    def proxy_duration(self) -> str | None:
        return self.budgets.duration

    @property
    def default_end_user_budget(self) -> Decimal | None:
        return self.budgets.default_end_user

    async def start(self) -> None:
        self.adopt_config(self.settings)
        if self.gate.connected:  # else the upkeep does it once the database is there
            await self.upkeep.first_sweep()
        self.upkeep.start()

    def adopt_config(self, settings: Settings) -> None:
        """The guardrails of `settings` (at start, and after a config reload); prices are looked up again."""
        self.checks.adopt(settings.config.guardrails)

    async def stop(self) -> None:
        await self.upkeep.stop()
        await self.checks.close()

    # the admin API's reads and writes -------------------------------------------------------------

    @property
    def cached_records(self) -> dict[str, Callable[[str], None]]:
        """What evicts one cached record, by change-log kind: `RecordSync` applies other processes' changes."""
        return {END_USER: self.end_users.forget, TAG_CHANGE: self.tags.forget}

    def forget_end_user(self, user_id: str) -> None:
        self.end_users.forget(user_id)

    def forget_tag(self, name: str) -> None:
        self.tags.forget(name)

    async def describe_key(self, info: dict[str, Any], record: Any) -> dict[str, Any]:
        return await self.live_spend.describe_key(info, record)

    async def describe_holder(self, info: dict[str, Any], kind: str, record: Any) -> dict[str, Any]:
        return await self.live_spend.describe_holder(info, kind, record)

    async def describe_end_user(self, info: dict[str, Any], record: Any) -> dict[str, Any]:
        return await self.live_spend.describe_end_user(info, record)


__all__ = ["CallChecks", "Governance"]
