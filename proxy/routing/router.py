"""The one router, used by the server and (with LiteLLM's `model_list` and a blocking face) by the SDK's
`proxy.Router` (sdk_router.py): alias → deployments → attempts.

Per request: the alias's deployments in priority tiers (`order`; with `enable_tag_filtering` only those the
request's tags reach, tagging.py), minus those cooling down or at one of our own limits (capacity.py: rpm/tpm,
max_parallel_requests); the strategy (picker.py) picks one; a retryable failure moves on to a deployment not
yet tried, then retries with backoff (policy.py), then to the fallback aliases (the request's, the key's, the
config's, the defaults), narrowed by the same tags. Deployments in cooldown
(cooldowns.py) are tried last, only when nothing else is left. The caller's bad request is never retried and
never falls back. When everything fails the caller gets one `AllDeploymentsFailedError` keeping every
cause (failures.py), and one WARNING line lists them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import (
    AllDeploymentsFailedError,
    ConfigurationError,
    ModelNotFoundError,
    ProxyError,
    UpstreamTimeoutError,
)
from ..invoke import invoke
from ..normalise import Ranked
from ..providers import Deployment
from ..redis_link import RedisLink
from ..request import RerankRequest
from ..transport import HttpxTransport, Transport
from .capacity import at_capacity, parallel_full, rpm_full
from .cooldowns import CooldownPolicy, Cooldowns
from .failures import all_failed
from .health_checks import ProbeResult, probe
from .outcome import Outcome, Trip
from .plan import Plan, make_plan
from .state import LocalState, State, Stats
from .table import Group, Member
from .tagging import TagView, answer_scope, refused

log = logging.getLogger("proxy.routing")


class Router:
    """Load balancing, retries, cooldowns and fallbacks over `aliases` ({alias: deployments}).

    `model_group_alias` takes LiteLLM's other names for an alias (`{"name": "alias"}` or `{"name": {"model":
    "alias", "hidden": True}}`); deployment ids must be unique. With
    `redis_url` (a link of its own) or `redis_link` (the server's, shared with limits and the cache),
    cooldowns, in-flight counts, rpm usage and latency are shared by every router using the same Redis and
    key prefix (`redis_prefix` + ':', default the link's; other replicas' numbers are at most
    `redis_refresh_interval` seconds old; rpm reservations are exact). `clock` (wall-clock seconds) and
    `seed` make routing reproducible.
    """

    def __init__(
        self,
        aliases: Mapping[str, Sequence[Deployment]] | None = None,
        *,
        fallbacks: list[dict[str, list[str]]] | None = None,
        model_group_alias: Mapping[str, str | Mapping[str, Any]] | None = None,
        default_fallbacks: list[str] | None = None,
        num_retries: int = 2,
        routing_strategy: str = "simple-shuffle",
        transport: Transport | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        retry_after: float = 0.05,
        max_retry_after: float = 2.0,
        allowed_fails: int = 3,
        cooldown_time: float = 5.0,
        max_cooldown_time: float = 60.0,
        routing_strategy_args: Mapping[str, Any] | None = None,
        enable_pre_call_checks: bool = False,
        enable_tag_filtering: bool = False,
        tag_filtering_match_any: bool = True,
        redis_url: str | None = None,
        redis_prefix: str | None = None,
        redis_refresh_interval: float = 0.1,
        redis_link: RedisLink | None = None,
        clock: Callable[[], float] | None = None,
        state: State | None = None,
    ):
        table: dict[str, list[Deployment]] = {alias: list(deps) for alias, deps in (aliases or {}).items()}
        self.plan: Plan = make_plan(table, model_group_alias=model_group_alias, fallbacks=fallbacks,
                                    default_fallbacks=default_fallbacks, num_retries=num_retries,
                                    routing_strategy=routing_strategy, routing_strategy_args=routing_strategy_args,
                                    retry_after=retry_after, max_retry_after=max_retry_after, timeout=timeout,
                                    enable_pre_call_checks=enable_pre_call_checks,
                                    enable_tag_filtering=enable_tag_filtering,
                                    tag_filtering_match_any=tag_filtering_match_any)
        if state is None:
            local = LocalState(latency_ttl=self.plan.strategy.latency_ttl)
            state = local
            if redis_url or redis_link is not None:
                from .redis_state import RedisState

                link = redis_link if redis_link is not None else RedisLink(redis_url or "")
                state = RedisState(link, local=local, needs=self.plan.needs, owns_link=redis_link is None,
                                   prefix=None if redis_prefix is None else redis_prefix + ":",
                                   refresh_interval=redis_refresh_interval)
        self.state: State = state
        self.cooldowns = Cooldowns(self.state, CooldownPolicy(allowed_fails, cooldown_time, max_cooldown_time))
        self._rng = random.Random(seed)
        self._jitter = random.Random(None if seed is None else seed + 1)
        self._clock = clock or time.time
        self._transport = transport
        self._own_transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HttpxTransport] = (
            weakref.WeakKeyDictionary())

    # -- transport: a given one, else one per event loop (the sync face runs on its own loop) ---------
    @property
    def transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        loop = asyncio.get_running_loop()
        own = self._own_transports.get(loop)
        if own is None:
            own = self._own_transports[loop] = HttpxTransport()
        return own

    # -- the plan: read per request, swapped whole by `adopt` ---------------------------------------------
    @property
    def aliases(self) -> dict[str, tuple[Deployment, ...]]:
        return self.plan.aliases

    @property
    def hidden_aliases(self) -> frozenset[str]:
        return self.plan.hidden_aliases

    @property
    def fallbacks(self) -> dict[str, tuple[str, ...]]:
        return self.plan.fallbacks

    @property
    def default_fallbacks(self) -> list[str]:
        return self.plan.default_fallbacks

    @property
    def strategy(self) -> Any:
        return self.plan.strategy

    @property
    def routing_strategy(self) -> str:
        return self.plan.routing_strategy

    @property
    def num_retries(self) -> int:
        return self.plan.num_retries

    def adopt(self, other: Router) -> None:
        """Take `other`'s plan and cooldown policy (a reloaded config); this router's state stays, so
        cooldowns, latency and rpm counts carry over for deployment ids present in both. Requests already
        routing finish on the plan they started with."""
        self.plan = other.plan
        self.cooldowns.policy = other.cooldowns.policy

    def canonical(self, name: str) -> str:
        """The `model_name` a `model_group_alias` name stands for (any other name: itself)."""
        group = self.plan.groups.get(name)
        return group.alias if group is not None else name

    def answer_scope(self, name: str, tags: Sequence[str] = ()) -> str | None:
        """The name `name`'s whole cached answers are kept under for these tags (`tagging.answer_scope`)."""
        group = self.plan.groups.get(name)
        return name if group is None else answer_scope(group, self.plan.tag_rule, tags)

    def require(self, alias: str) -> None:
        if alias not in self.plan.aliases:
            raise ModelNotFoundError(f"model '{alias}' not found; ask GET /v1/models for the models you can use")

    def deployment_states(self) -> dict[str, str]:
        """Deployment id → "healthy" | "cooldown" | "unavailable" (missing key), as this process last saw it."""
        now = self._clock()
        return {m.id: "unavailable" if m.deployment.missing_env
                else "cooldown" if self.state.cooled_until(m.id) > now else "healthy"
                for group in self.plan.groups.values() for m in group.members}

    # -- the request path ------------------------------------------------------------------------------
    async def route(self, alias: str, request: RerankRequest, *, fallbacks: Sequence[str] | None = None,
                    outcome: Outcome | None = None, tags: Sequence[str] = ()) -> Outcome:
        """Serve `request` from `alias` (then its fallbacks); `outcome` is filled in even on failure.
        `tags` (the request's, key's and team's) narrow every alias when the plan has tag filtering on."""
        plan = self.plan
        if alias not in plan.aliases:
            self.require(alias)
        outcome = outcome if outcome is not None else Outcome()
        outcome.alias = alias
        trip = Trip(plan, plan.policy.deadline())
        if plan.tag_rule is not None:
            trip.groups = TagView(plan.groups, plan.tag_rule, tags)
        if await self._serve(alias, 0, request, outcome, trip, last_resort=False):
            return outcome
        chain = plan.chain(alias, fallbacks)
        for position, target in enumerate(chain[1:], 1):
            if trip.timed_out:
                break
            if await self._serve(target, position, request, outcome, trip, last_resort=False):
                return outcome
        for position, target in enumerate(chain):
            if trip.timed_out:
                break
            if await self._serve(target, position, request, outcome, trip, last_resort=True):
                return outcome
        if plan.tag_rule is not None and (error := refused(alias, chain, trip.groups, tags)) is not None:
            raise error
        raise self._all_failed(alias, chain, request, outcome, trip)

    async def _serve(self, target: str, position: int, request: RerankRequest, outcome: Outcome, trip: Trip,
                     last_resort: bool) -> bool:
        """Attempts on one alias until one succeeds (True), its attempts run out or nothing is available."""
        plan = trip.plan
        group = trip.groups[target]
        stats = trip.views.get(target)
        if stats is None:
            stats = trip.views[target] = await self.state.read(group, self._clock())
        budget = plan.policy.attempts_for(group.size)
        while trip.spent.get(target, 0) < budget:
            now = self._clock()
            index = self._choose(group, stats, trip, now, last_resort)
            if index is None:
                return False
            member = group.members[index]
            if member.id in trip.tried:
                error = trip.last_error.get(member.id)
                wait = plan.policy.wait(trip.retries, error.retry_after if error else None, self._jitter)
                if trip.deadline is not None and time.monotonic() + wait >= trip.deadline:
                    trip.timed_out = True
                    return False
                trip.retries += 1
                trip.repeats[member.id] = trip.repeats.get(member.id, 0) + 1
                await asyncio.sleep(wait)
                now = self._clock()
            elif trip.deadline is not None and time.monotonic() >= trip.deadline:
                trip.timed_out = True
                return False
            counted = False
            if plan.limits:
                if plan.enforce and member.rpm is not None:
                    if not await self.state.reserve(member, now):
                        trip.full[member.id] = rpm_full(member, now)
                        continue
                    counted = True
                # Checked again after the awaits above; from here to the call's start nothing awaits.
                if member.max_parallel is not None and stats[index].busy + stats[index].others >= member.max_parallel:
                    trip.full[member.id] = parallel_full(member)
                    continue
            trip.spent[target] = trip.spent.get(target, 0) + 1
            if await self._attempt(member, request, outcome, trip, counted, now):
                outcome.alias = group.alias
                outcome.fallback_used = position > 0
                return True
            if trip.timed_out:
                return False
        return False

    def _choose(self, group: Group, stats: Sequence[Stats], trip: Trip, now: float,
                last_resort: bool) -> int | None:
        """The next member to call: untried ones of the first tier that has any, else a retry."""
        members, retry = group.members, None
        minute = int(now // 60)
        for tier in group.tiers:
            fresh: list[int] = []
            again: list[int] = []
            for i in tier:
                if self._available(members[i], stats[i], trip, now, minute, last_resort):
                    if members[i].id not in trip.tried:
                        fresh.append(i)
                    elif _may_repeat(members[i], trip):
                        again.append(i)
            if fresh:
                return trip.plan.strategy.pick(fresh, members, stats, self._rng, now)
            if again and retry is None:
                retry = again
        if retry:
            return trip.plan.strategy.pick(retry, members, stats, self._rng, now)
        return None

    def _available(self, member: Member, stats: Stats, trip: Trip, now: float, minute: int,
                   last_resort: bool) -> bool:
        if trip.full and member.id in trip.full:
            return False
        if trip.plan.limits:
            full = at_capacity(member, stats, now, minute, trip.plan.enforce)
            if full is not None:
                trip.full[member.id] = full
                return False
        return last_resort or not (stats.cool_until > now or member.id in trip.cooled)

    async def _attempt(self, member: Member, request: RerankRequest, outcome: Outcome, trip: Trip,
                       counted: bool, now: float) -> bool:
        deployment = member.deployment
        transport = self._transport or self.transport
        trip.tried.add(member.id)
        self.state.begin(member, now, counted)
        started = time.perf_counter()
        try:
            if trip.deadline is None or trip.deadline - time.monotonic() >= deployment.timeout:
                response = await invoke(request, deployment, transport)
            else:
                response = await self._bounded(request, deployment, transport, trip)
        except ProxyError as exc:
            ended = time.perf_counter()
            elapsed = ended - started
            outcome.upstream_ms += elapsed * 1000
            outcome.attempts.append((deployment.id, exc))
            outcome.timeline.append((deployment, started, ended, exc))
            outcome.deployment = deployment
            self.state.end(member, self._clock(), elapsed if isinstance(exc, UpstreamTimeoutError) else None, None)
            if not exc.retryable:
                raise
            if isinstance(exc, ConfigurationError):  # the same call would fail the same way: move on at once
                trip.unusable.add(member.id)
            trip.last_error[member.id] = exc
            if not trip.timed_out and await self.cooldowns.failed(member.id, exc, self._clock()):
                trip.cooled.add(member.id)
            return False
        except BaseException:
            self.state.end(member, self._clock(), None, None)
            raise
        ended = time.perf_counter()
        elapsed = ended - started
        outcome.upstream_ms += elapsed * 1000
        outcome.timeline.append((deployment, started, ended, None))
        outcome.response = response
        outcome.deployment = deployment
        self.state.end(member, self._clock(), elapsed, _tokens(response) if member.tpm else None)
        return True

    async def _bounded(self, request: RerankRequest, deployment: Deployment, transport: Transport,
                       trip: Trip) -> Ranked:
        """One attempt cut short by the request's overall timeout."""
        assert trip.deadline is not None
        try:
            async with asyncio.timeout(max(trip.deadline - time.monotonic(), 0.0)):
                return await invoke(request, deployment, transport)
        except TimeoutError:
            trip.timed_out = True
            raise UpstreamTimeoutError(f"the request's overall timeout of {trip.plan.policy.timeout:g}s ran out",
                                       provider=deployment.provider.name) from None

    def _all_failed(self, alias: str, chain: list[str], request: RerankRequest, outcome: Outcome,
                    trip: Trip) -> AllDeploymentsFailedError:
        members = (m for target in chain for m in _reachable(trip.groups[target]))
        return all_failed(alias, request.query, outcome, trip, chain_members=members, state=self.state,
                          max_cooldown_time=self.cooldowns.policy.max_cooldown_time, now=self._clock())

    # -- health ----------------------------------------------------------------------------------------
    async def check_health(self, *, timeout: float = 10.0) -> list[ProbeResult]:
        """Probe every deployment with a tiny rerank call; failures count toward cooldowns, successes end them."""
        pairs = [(alias, m) for alias, group in self.plan.groups.items() if group.alias == alias
                 for m in group.members]
        transport = self.transport
        results = await asyncio.gather(*(probe(alias, m.deployment, transport, timeout) for alias, m in pairs))
        for (_, member), result in zip(pairs, results, strict=True):
            if result.error is None:
                self.cooldowns.recovered(member.id)
            else:
                await self.cooldowns.failed(member.id, result.error, self._clock())
        return list(results)

    # -- SDK face --------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close what this event loop's calls opened (connections, the Redis client)."""
        await self.state.aclose()
        try:
            own = self._own_transports.pop(asyncio.get_running_loop(), None)
        except RuntimeError:
            own = None
        if own is not None:
            await own.aclose()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _may_repeat(member: Member, trip: Trip) -> bool:
    """A deployment already tried may be tried again: it can be called, and its `max_retries` allows it."""
    if member.id in trip.unusable:
        return False
    return member.max_retries is None or trip.repeats.get(member.id, 0) < member.max_retries


def _reachable(group: Group) -> list[Member]:
    return [group.members[i] for tier in group.tiers for i in tier]


def _tokens(response: Ranked) -> int | None:
    return response.usage.tokens or None

