"""Counters shared by every replica through Redis: one Lua script checks and takes all of a call's limits.

Keys (under the configured prefix):
  rpm:<counter>                  INCR; expires one window after the first request in it
  parallel:<counter>             sorted set of request ids in flight (a crashed replica's slots age out)
  budget:<counter>:<period>      hash {s: spent, r: reserved} in 1e-10 USD; <period> is the reset time, so a
                                 new period starts at zero; the database's figure is merged in upward
  tpm:<counter>:<minute>         INCRBY the tokens of each finished call; <minute> is the Unix minute
Admission is one round-trip (EVALSHA); releases, settlements and token counts are one more, off the
request path. Every call takes the client to use: the process's `RedisLink` has one per event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ..redis_link import Script
from .local import Refused
from .rules import RPM_WINDOW_SECONDS, TPM_MINUTE_SECONDS, Limit, seconds_to_next_minute, tpm_minute

TICKS = Decimal(10) ** 10  # Redis holds money as integer 1e-10 USD (the database's scale)
PARALLEL_MAX_AGE_MS = 600_000
LIFETIME_BUDGET_TTL_MS = 24 * 3600 * 1000
PERIOD_GRACE_MS = 3600 * 1000
TPM_TTL_MS = 2 * TPM_MINUTE_SECONDS * 1000  # a minute's count outlives the minute, for clock skew between replicas

ADMIT = Script("""
local n = #KEYS
local member = ARGV[5 * n + 1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local kind, limit, a = ARGV[5 * i - 4], tonumber(ARGV[5 * i - 3]), tonumber(ARGV[5 * i - 2])
  local key = KEYS[i]
  if kind == 'r' then
    if tonumber(redis.call('GET', key) or '0') >= limit then return {i, redis.call('PTTL', key), '0'} end
  elseif kind == 'p' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - a)
    if redis.call('ZCARD', key) >= limit then return {i, -1, '0'} end
  elseif kind == 't' then
    local used = tonumber(redis.call('GET', key) or '0')
    if used >= limit then return {i, -1, tostring(used)} end
  else
    local spent = tonumber(redis.call('HGET', key, 's') or '0')
    if spent < a then spent = a end
    local used = spent + tonumber(redis.call('HGET', key, 'r') or '0')
    if used >= limit then return {i, -1, string.format('%.0f', used)} end
  end
end
for i = 1, n do
  local kind, a = ARGV[5 * i - 4], tonumber(ARGV[5 * i - 2])
  local key = KEYS[i]
  if kind == 'r' then
    redis.call('INCR', key)
    if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, a) end
  elseif kind == 'p' then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, a)
  elseif kind == 'b' then
    if tonumber(redis.call('HGET', key, 's') or '0') < a then redis.call('HSET', key, 's', ARGV[5 * i - 2]) end
    redis.call('HINCRBY', key, 'r', ARGV[5 * i - 1])
    redis.call('PEXPIRE', key, ARGV[5 * i])
  end
end
return {0, 0, '0'}
""")

RELEASE = Script("""
local n = #KEYS
local member = ARGV[3 * n + 1]
for i = 1, n do
  local key = KEYS[i]
  local kind = ARGV[3 * i - 2]
  if kind == 'p' then
    redis.call('ZREM', key, member)
  elseif kind == 't' then
    redis.call('INCRBY', key, ARGV[3 * i - 1])
    redis.call('PEXPIRE', key, ARGV[3 * i])
  elseif redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'r', ARGV[3 * i - 1])
    redis.call('HINCRBY', key, 's', ARGV[3 * i])
  end
end
return 0
""")


def ticks(amount: Decimal) -> int:
    return int((amount * TICKS).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class SharedAdmission:
    parallel: tuple[str, ...]
    """Redis keys of the parallel slots taken."""
    budgets: tuple[str, ...]
    """Redis keys of the budget hashes reserved in."""
    tpm: tuple[str, ...] = ()
    """Counters of the call's `tpm_limit`s (their Redis key depends on the minute the call ends)."""


class RedisCounters:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tpm_key(self, counter: str, now: datetime) -> str:
        return f"{self.prefix}tpm:{counter}:{tpm_minute(now)}"

    def budget_key(self, counter: str, period: datetime | None) -> str:
        return f"{self.prefix}budget:{counter}:{int(period.timestamp()) if period else 'all'}"

    async def admit(self, client: Any, limits: list[Limit], estimate: Decimal, member: str,
                    now: datetime) -> Refused | SharedAdmission:
        keys: list[str] = []
        args: list[Any] = []
        reserve = ticks(estimate)
        for limit in limits:
            if limit.kind == "rpm":
                keys.append(f"{self.prefix}rpm:{limit.counter}")
                args += ["r", limit.limit, int(RPM_WINDOW_SECONDS * 1000), 0, 0]
            elif limit.kind == "parallel":
                keys.append(f"{self.prefix}parallel:{limit.counter}")
                args += ["p", limit.limit, PARALLEL_MAX_AGE_MS, 0, 0]
            elif limit.kind == "tpm":
                keys.append(self.tpm_key(limit.counter, now))
                args += ["t", limit.limit, 0, 0, 0]
            else:
                keys.append(self.budget_key(limit.counter, limit.period_end))
                ttl = (int((limit.period_end - now).total_seconds() * 1000) + PERIOD_GRACE_MS
                       if limit.period_end else LIFETIME_BUDGET_TTL_MS)
                args += ["b", ticks(Decimal(limit.limit)), ticks(limit.seed), reserve, max(ttl, 1000)]
        args.append(member)
        index, pttl, used = await ADMIT(client, keys, args)
        if index:
            limit = limits[int(index) - 1]
            if limit.kind == "tpm":
                return Refused(limit, retry_after=seconds_to_next_minute(now), used=Decimal(int(used)))
            return Refused(limit, retry_after=int(pttl) / 1000 if int(pttl) > 0 else None,
                           used=Decimal(int(used)) / TICKS if limit.kind == "budget" else None)
        return SharedAdmission(
            parallel=tuple(k for k, lim in zip(keys, limits, strict=True) if lim.kind == "parallel"),
            budgets=tuple(k for k, lim in zip(keys, limits, strict=True) if lim.kind == "budget"),
            tpm=tuple(lim.counter for lim in limits if lim.kind == "tpm"))

    async def release(self, client: Any, admission: SharedAdmission, member: str, estimate: Decimal, cost: Decimal,
                      tokens: int = 0, ended: datetime | None = None) -> None:
        """Free parallel slots, settle budget reservations with `cost`, and count `tokens` against the
        `tpm_limit` counters in the minute the call `ended`."""
        counted = [self.tpm_key(c, ended) for c in admission.tpm] if tokens and ended is not None else []
        keys = [*admission.parallel, *admission.budgets, *counted]
        if not keys:
            return
        args: list[Any] = []
        for _ in admission.parallel:
            args += ["p", 0, 0]
        for _ in admission.budgets:
            args += ["b", -ticks(estimate), ticks(cost)]  # negated here: Lua would write -0 as "-0"
        for _ in counted:
            args += ["t", tokens, TPM_TTL_MS]
        args.append(member)
        await RELEASE(client, keys, args)

    async def tokens_used(self, client: Any, counter: str, now: datetime) -> int:
        return int(await client.get(self.tpm_key(counter, now)) or 0)

    async def spent(self, client: Any, counter: str, period: datetime | None) -> Decimal | None:
        value = await client.hget(self.budget_key(counter, period), "s")
        return None if value is None else Decimal(int(value)) / TICKS
