"""Routing state shared by every replica through Redis, on top of this process's `LocalState`.

The request path reads the in-process copy, which counts this replica's own calls as they happen and
folds in the other replicas' numbers from Redis: read once when an alias is first routed (awaited),
then refreshed in the background at most every `refresh_interval` seconds (0: read on every request).
What must be exact across replicas is a round trip on the request path: reserving a request against a
deployment's `rpm` (an atomic INCR) and counting a failure toward `allowed_fails`. Everything else
(in-flight counts, usage, latency, cooldowns) is queued and written in batches by one task per event loop.

When Redis cannot be reached, routing carries on with the in-process numbers: one warning is logged,
Redis is pinged every `retry_interval` seconds, and sharing resumes when it answers.

Keys (prefix p, deployment id d, minute m):
    p:cool:d     cooled until (wall clock); expires with the cooldown
    p:fail:d     failures in the current window; expires with the window
    p:rpm:d:m    requests started in minute m         p:tpm:d:m   tokens reported in minute m
    p:busy:d     hash replica → "in-flight:timestamp" (fields older than a minute are ignored)
    p:lat:d      moving-average latency in seconds; expires after the latency ttl
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .state import LocalState, Stats
from .table import Group, Member

log = logging.getLogger("proxy.routing")

USAGE_TTL = 120
BUSY_TTL = 120
BUSY_STALE = 60.0

RESERVE = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local limit = tonumber(ARGV[1])
if limit > 0 and used > limit then
  redis.call('DECR', KEYS[1])
  return -limit
end
return used
"""
"""Count one request against a deployment's rpm in this minute, atomically: the new count, or -rpm when full."""


def redacted(url: str) -> str:
    """scheme://host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path or ''}"


class _Link:
    """One event loop's Redis client, its write queue and the tasks that serve it."""

    __slots__ = ("client", "pending", "wake", "flusher", "reconnect", "closing")

    def __init__(self, client: Any):
        self.client = client
        self.pending: list[tuple[Any, ...]] = []
        self.wake = asyncio.Event()
        self.flusher: asyncio.Task | None = None
        self.reconnect: asyncio.Task | None = None
        self.closing = False


class RedisState:
    shared = True

    def __init__(self, url: str, *, local: LocalState, needs: frozenset[str] = frozenset(),
                 prefix: str = "rerank-proxy", refresh_interval: float = 0.1, timeout: float = 0.5,
                 retry_interval: float = 1.0):
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import NoScriptError, RedisError
        except ImportError:
            raise ConfigurationError("router_settings.redis_url needs the optional package 'redis': "
                                     "pip install 'rerank-proxy[redis]'") from None

        def connect() -> Any:
            return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0))

        self._connect = connect
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._noscript = NoScriptError
        self._reserve_sha = hashlib.sha1(RESERVE.encode()).hexdigest()
        self.local = local
        self.where = redacted(url)
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self._p = prefix + ":"
        self._busy = "busy" in needs
        self._usage = "usage" in needs
        self._latency = "latency" in needs
        self._replica = uuid.uuid4().hex[:12]
        self._links: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Link] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop | None, _Link | None] = (None, None)
        self._keys: dict[str, tuple[int, list[str], int]] = {}
        self._fetched: dict[str, tuple[float, asyncio.Task | None]] = {}
        self._expiring: dict[str, float] = {}
        """Key → when we last set its TTL, so a key's TTL is not rewritten on every call."""
        self.down = False

    # -- plumbing ------------------------------------------------------------------------------------
    def _link(self) -> _Link:
        loop = asyncio.get_running_loop()
        last_loop, last_link = self._last
        if loop is last_loop and last_link is not None:
            return last_link
        link = self._links.get(loop)
        if link is None:
            link = self._links[loop] = _Link(self._connect())
            link.flusher = loop.create_task(self._flush(link), name="rerank-proxy-redis-writer")
        self._last = (loop, link)
        return link

    def _queue(self, *command: Any) -> None:
        link = self._link()
        link.pending.append(command)
        link.wake.set()

    def _queue_ttl(self, key: str, seconds: int, now: float) -> None:
        """Set a key's TTL once in a while (counters are created by INCR, which keeps no TTL of its own)."""
        if now - self._expiring.get(key, -1e18) < seconds / 4:
            return
        if len(self._expiring) > 10_000:
            self._expiring.clear()
        self._expiring[key] = now
        self._queue("EXPIRE", key, seconds)

    async def _flush(self, link: _Link) -> None:
        while not link.closing:
            await link.wake.wait()
            link.wake.clear()
            await self._write(link)

    async def _write(self, link: _Link) -> None:
        commands, link.pending = link.pending, []
        if not commands or self.down:
            return
        pipe = link.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            await pipe.execute(raise_on_error=False)
        except self._errors as exc:
            self._went_down(link, exc)

    def _went_down(self, link: _Link, exc: BaseException) -> None:
        if self.down:
            return
        self.down = True
        self._expiring.clear()
        log.warning("Redis at %s is unreachable (%s); routing state stays in this process until it answers",
                    self.where, type(exc).__name__)
        self._watch(link)

    def _watch(self, link: _Link) -> None:
        """Ping from this loop until Redis answers (the loop that noticed the outage may have ended since)."""
        if link.reconnect is None or link.reconnect.done():
            link.reconnect = asyncio.get_running_loop().create_task(self._reconnect(link))

    async def _reconnect(self, link: _Link) -> None:
        while self.down:
            await asyncio.sleep(self.retry_interval)
            try:
                await link.client.ping()
            except self._errors:
                continue
            self.down = False
            self._fetched.clear()
            log.info("Redis at %s answers again; routing state is shared again", self.where)

    def _read_keys(self, group: Group, minute: int) -> tuple[list[str], int]:
        cached = self._keys.get(group.alias)
        if cached is not None and cached[0] == minute:
            return cached[1], cached[2]
        p, keys = self._p, []
        for m in group.members:
            keys.append(f"{p}cool:{m.id}")
            if self._usage:
                keys += [f"{p}rpm:{m.id}:{minute}", f"{p}tpm:{m.id}:{minute}"]
            if self._latency:
                keys.append(f"{p}lat:{m.id}")
        width = 1 + 2 * self._usage + self._latency
        self._keys[group.alias] = (minute, keys, width)
        return keys, width

    # -- reading -------------------------------------------------------------------------------------
    async def read(self, group: Group, now: float) -> Sequence[Stats]:
        view = self.local.view(group)
        if self.down:
            self._watch(self._link())
            return view
        seen = self._fetched.get(group.alias)
        if seen is None or self.refresh_interval <= 0:
            await self._fetch(group, now)
        elif time.monotonic() - seen[0] >= self.refresh_interval and (seen[1] is None or seen[1].done()):
            task = asyncio.get_running_loop().create_task(self._fetch(group, now))
            self._fetched[group.alias] = (seen[0], task)
        return view

    async def _fetch(self, group: Group, now: float) -> None:
        """Fold the other replicas' numbers for `group` into the in-process copy: one pipelined round trip."""
        started = time.monotonic()
        minute = int(now // 60)
        keys, width = self._read_keys(group, minute)
        link = self._link()
        try:
            if self._busy:
                pipe = link.client.pipeline(transaction=False)
                pipe.mget(keys)
                for m in group.members:
                    pipe.hgetall(f"{self._p}busy:{m.id}")
                replies = await pipe.execute()
                values, busy = replies[0], replies[1:]
            else:
                values, busy = await link.client.mget(keys), None
        except self._errors as exc:
            self._fetched[group.alias] = (started, None)
            self._went_down(link, exc)
            return
        for i, m in enumerate(group.members):
            row = values[i * width:(i + 1) * width]
            self.local.merge_shared(
                m.id, now,
                cool_until=float(row[0]) if row[0] else 0.0,
                used=int(row[1] or 0) if self._usage else None,
                tokens=int(row[2] or 0) if self._usage else None,
                latency=float(row[-1]) if self._latency and row[-1] else None,
                others=self._others_busy(busy[i], now) if busy is not None else None,
            )
        self._fetched[group.alias] = (started, None)

    def _others_busy(self, fields: dict[bytes, bytes], now: float) -> int:
        total, me = 0, self._replica.encode()
        for replica, value in fields.items():
            if replica == me:
                continue
            count, _, stamp = value.partition(b":")
            if now - float(stamp or 0) <= BUSY_STALE:
                total += max(int(count), 0)
        return total

    # -- exact counts (awaited) ----------------------------------------------------------------------
    async def reserve(self, member: Member, now: float) -> bool:
        if self.down:
            return self.local.try_reserve(member, now)
        key = f"{self._p}rpm:{member.id}:{int(now // 60)}"
        link = self._link()
        try:
            try:
                used = await link.client.evalsha(self._reserve_sha, 1, key, member.rpm or 0, USAGE_TTL)
            except self._noscript:  # first use on this Redis (or after its restart): send the script itself
                used = await link.client.eval(RESERVE, 1, key, member.rpm or 0, USAGE_TTL)
        except self._errors as exc:
            self._went_down(link, exc)
            return self.local.try_reserve(member, now)
        if used < 0:
            self.local.set_used(member.id, now, -used)
            return False
        self.local.set_used(member.id, now, used)
        return True

    async def count_failure(self, member_id: str, now: float, window: float) -> int:
        if self.down:
            return self.local.count_failure_now(member_id, now, window)
        key = f"{self._p}fail:{member_id}"
        link = self._link()
        try:
            pipe = link.client.pipeline(transaction=False)
            pipe.set(key, 0, ex=max(int(window), 1), nx=True)
            pipe.incr(key)
            failures = (await pipe.execute(raise_on_error=False))[1]
        except self._errors as exc:
            self._went_down(link, exc)
            return self.local.count_failure_now(member_id, now, window)
        if isinstance(failures, Exception):
            return self.local.count_failure_now(member_id, now, window)
        stats = self.local.stats(member_id)
        stats.fails, stats.fails_since = failures, now
        return failures

    # -- queued writes -------------------------------------------------------------------------------
    def _publish_busy(self, member: Member, now: float) -> None:
        key = f"{self._p}busy:{member.id}"
        self._queue("HSET", key, self._replica, f"{self.local.stats(member.id).busy}:{now:.0f}")
        self._queue_ttl(key, BUSY_TTL, now)

    def begin(self, member: Member, now: float, counted: bool) -> None:
        self.local.begin(member, now, counted)
        if self.down:
            return
        if self._usage and not counted:
            key = f"{self._p}rpm:{member.id}:{int(now // 60)}"
            self._queue("INCR", key)
            self._queue_ttl(key, USAGE_TTL, now)
        if self._busy:
            self._publish_busy(member, now)

    def end(self, member: Member, now: float, latency: float | None, tokens: int | None) -> None:
        self.local.end(member, now, latency, tokens)
        if self.down:
            return
        if self._busy:
            self._publish_busy(member, now)
        if latency is not None and self._latency:
            ttl = max(int(self.local.latency_ttl), 1)
            self._queue("SET", f"{self._p}lat:{member.id}", repr(self.local.stats(member.id).latency), "EX", ttl)
        if tokens and member.tpm and self._usage:
            key = f"{self._p}tpm:{member.id}:{int(now // 60)}"
            self._queue("INCRBY", key, tokens)
            self._queue_ttl(key, USAGE_TTL, now)

    def cool(self, member_id: str, until: float, now: float) -> None:
        self.local.cool(member_id, until, now)
        millis = int((until - now) * 1000)
        if self.down or millis <= 0:
            return
        self._queue("SET", f"{self._p}cool:{member_id}", repr(until), "PX", millis)
        self._queue("DEL", f"{self._p}fail:{member_id}")

    def recover(self, member_id: str) -> None:
        self.local.recover(member_id)
        if not self.down:
            self._queue("DEL", f"{self._p}cool:{member_id}", f"{self._p}fail:{member_id}")

    def cooled_until(self, member_id: str) -> float:
        return self.local.cooled_until(member_id)

    async def aclose(self) -> None:
        """Write what this loop queued and close its client (other loops' clients end with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        refreshing = [task for _, task in self._fetched.values()
                      if task is not None and not task.done() and task.get_loop() is loop]
        for task in refreshing:
            task.cancel()
        await asyncio.gather(*refreshing, return_exceptions=True)
        link = self._links.pop(loop, None)
        self._last = (None, None)
        if link is None:
            return
        link.closing = True
        link.wake.set()
        if link.reconnect is not None:
            link.reconnect.cancel()
        if link.flusher is not None:
            try:
                await asyncio.wait_for(link.flusher, timeout=2)  # writes what is queued, then ends
            except (TimeoutError, asyncio.CancelledError):
                pass
        try:
            await link.client.aclose()
        except self._errors:
            pass
