"""The engine's `Checks`: guardrails on the query, then rate limits and budgets, for every rerank call.

`before` runs after validation and before routing: guardrails may block (400) or mask the query (the
upstream only ever sees the masked one); then every limit of the call (key, model, end-user, proxy) is
checked and taken in one atomic step, in Redis when configured (shared by replicas, one round-trip) or in
this process. Budgets reserve the call's estimated price (the dearest deployment of the alias × units) so a
burst of concurrent calls cannot all pass a nearly spent budget; `after` (always run) frees parallel slots
and settles the reservation with the real cost. A Redis outage falls back to this process's counters with
a warning; it never fails a call.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from ..engine import Call
from ..errors import PermissionDeniedError
from ..guardrails import GuardContext, GuardrailChain, build_chain
from ..limits import (
    EndUserRecords,
    Limit,
    LocalCounters,
    RedisCounters,
    Refused,
    SharedAdmission,
    call_limits,
    refusal,
)
from ..pricing import Price, cost, estimate_tokens, price_for
from ..providers import Usage
from ..redis_link import RedisLink
from ..routing import Router
from .budgets import ProxyBudgets

MAX_UNRELEASED = 10_000
ADMISSION = "governance.admission"


@dataclass(slots=True)
class Admission:
    """What a call took, so `after` can give it back: local parallel slots, budget reservations, Redis."""

    parallel: tuple[str, ...]
    budgets: tuple[tuple[str, datetime | None], ...]
    estimate: Decimal
    member: str
    shared: SharedAdmission | None = None
    tpm: tuple[str, ...] = ()
    """Counters of the call's `tpm_limit`s, to count its tokens against when it ends."""


class CallChecks:
    def __init__(self, router: Router, local: LocalCounters, end_users: EndUserRecords, link: RedisLink | None,
                 budgets: ProxyBudgets, clock: Callable[[], datetime], tags: EndUserRecords) -> None:
        self.router = router
        self.local = local
        self.end_users = end_users
        self.tags = tags
        self.link = link
        """The process's Redis (None: counted in this process only)."""
        self.shared = RedisCounters(link.prefix) if link is not None else None
        if link is not None:
            link.serve("limits", "rate limits and budgets are counted per process")
        self.budgets = budgets
        self.clock = clock
        self.chain = GuardrailChain()
        self._http: httpx.AsyncClient | None = None
        self._prices: dict[str, tuple[Price, ...]] = {}
        self._members = itertools.count()
        self._node = uuid.uuid4().hex[:12]
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreleased: list[tuple[Admission, Decimal, int, datetime | None]] = []  # releases to retry

    def adopt(self, entries: Iterable[Any]) -> None:
        """The guardrails of `settings.config.guardrails` (at start, and after a config reload), with an HTTP
        client for webhooks; prices are looked up again."""
        entries = list(entries)
        if self._http is None and any(e.litellm_params.get("guardrail") == "webhook" for e in entries):
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self.chain = build_chain(entries, self._http)
        self._prices.clear()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._http is not None:
            await self._http.aclose()

    # the Checks hook ------------------------------------------------------------------------------

    async def before(self, call: Call) -> None:
        key = call.caller.record
        end_user = None
        if call.end_user is not None:
            end_user = await self.end_users.get(call.end_user)
            if end_user is not None and end_user.blocked:
                raise PermissionDeniedError(f"end-user '{call.end_user}' is blocked")
        key_guardrails = key.guardrails if key is not None else None
        if self.chain or key_guardrails or call.body.guardrails:
            await self._guard(call, key_guardrails)
        tags = [t for t in [await self.tags.get(name) for name in call.tags] if t is not None] if call.tags else ()
        for tag in tags:
            if tag.models and call.alias not in tag.models:
                raise PermissionDeniedError(f"tag '{tag.tag_name}' is not allowed to use model '{call.alias}'")
        now = self.clock()
        limits = call_limits(key_hash=call.caller.key_hash, key=key, alias=call.alias, end_user_id=call.end_user,
                             end_user=end_user, default_end_user_budget=self.budgets.default_end_user,
                             proxy=self.budgets.current, now=now, team=call.caller.team, user=call.caller.user,
                             tags=tuple(tags))
        if limits:
            call.extra[ADMISSION] = await self._admit(call, limits, now)

    def after(self, call: Call) -> None:
        admission: Admission | None = call.extra.pop(ADMISSION, None)
        if admission is None:
            return
        spent = call.cost
        self.local.release(admission.parallel, admission.budgets, admission.estimate, spent)
        tokens, ended = (_tokens_used(call), self.clock()) if admission.tpm else (0, None)
        if tokens and ended is not None and admission.shared is None:
            self.local.add_tokens(admission.tpm, tokens, ended)
        if admission.shared is not None:
            task = asyncio.get_running_loop().create_task(self._release_shared(admission, spent, tokens, ended))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def retry_releases(self) -> None:
        """Give back slots, settle reservations and count tokens whose release failed while Redis was away."""
        while self._unreleased and self.link is not None and not self.link.down:
            await self._release_shared(*self._unreleased.pop())

    async def _guard(self, call: Call, key_guardrails: list[str] | None) -> None:
        selected = self.chain.select(key_guardrails, call.body.guardrails)
        if not selected:
            return
        caller = call.caller
        context = GuardContext(model=call.alias, key_alias=caller.key_alias, user_id=caller.user_id,
                               end_user=call.end_user, metadata=call.body.metadata or {})
        query = await self.chain.run(selected, call.request.query, context, call.guardrails)
        if query != call.request.query:
            call.request = call.request.with_query(query)

    async def _admit(self, call: Call, limits: list[Limit], now: datetime) -> Admission:
        estimate = self._estimate(call) if any(lim.kind == "budget" for lim in limits) else Decimal(0)
        budgets = tuple((lim.counter, lim.period_end) for lim in limits if lim.kind == "budget")
        member = f"{self._node}:{next(self._members)}"
        link, shared = self.link, self.shared
        if link is not None and shared is not None and (client := link.client()) is not None:
            try:
                result = await shared.admit(client, limits, estimate, member, now)
            except link.errors as exc:
                link.failed(exc)
            else:
                link.ok()
                if isinstance(result, Refused):
                    raise refusal(result.limit, now=now, retry_after=result.retry_after, used=result.used)
                # Mirror the reservation here so a later fallback starts from what this process saw.
                self.local.take([lim for lim in limits if lim.kind == "budget"], estimate, now)
                return Admission((), budgets, estimate, member, result, result.tpm)
        refused = self.local.admit(limits, estimate, now)
        if refused is not None:
            raise refusal(refused.limit, now=now, retry_after=refused.retry_after, used=refused.used)
        parallel = tuple(lim.counter for lim in limits if lim.kind == "parallel")
        tpm = tuple(lim.counter for lim in limits if lim.kind == "tpm")
        return Admission(parallel, budgets, estimate, member, tpm=tpm)

    async def _release_shared(self, admission: Admission, spent: Decimal, tokens: int = 0,
                              ended: datetime | None = None) -> None:
        assert self.link is not None and self.shared is not None and admission.shared is not None
        client = self.link.client()
        if client is not None:
            try:
                await self.shared.release(client, admission.shared, admission.member, admission.estimate, spent,
                                          tokens, ended)
            except self.link.errors as exc:
                self.link.failed(exc)
            else:
                self.link.ok()
                return
        if len(self._unreleased) < MAX_UNRELEASED:  # else the slots age out and the reservations expire
            self._unreleased.append((admission, spent, tokens, ended))

    def _estimate(self, call: Call) -> Decimal:
        """The call's price at the dearest deployment of its alias, before any provider reports usage."""
        prices = self._prices.get(call.alias)
        if prices is None:
            prices = self._prices[call.alias] = tuple(price_for(d) for d in self.router.aliases.get(call.alias, ()))
        return max((cost(Usage(), call.request, p) for p in prices), default=Decimal(0))


def _tokens_used(call: Call) -> int:
    """What a call counts against `tpm_limit`: the tokens the provider reported, else our estimate; a call
    that got no answer used none."""
    response = call.response
    if response is None:
        return 0
    reported = response.usage.tokens
    return reported if reported is not None else estimate_tokens(call.request)
