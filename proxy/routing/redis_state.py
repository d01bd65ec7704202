"""Routing state shared by every replica through Redis, on top of this process's `LocalState`.

The request path reads the in-process copy, which counts this replica's own calls as they happen and
folds in the other replicas' numbers from Redis: read once when an alias is first routed (awaited),
then refreshed in the background at most every `refresh_interval` seconds (0: read on every request).
What must be exact across replicas is a round trip on the request path: reserving a request against a
deployment's `rpm` (an atomic INCR) and counting a failure toward `allowed_fails`. Everything else
(in-flight counts, usage, latency, cooldowns) is queued and written in batches by one task per event loop.

Redis is reached through the process's `RedisLink` (redis_link.py), shared with limits and the result
cache: while the link is down routing carries on with the in-process numbers, and sharing resumes (every
alias read afresh) when it is back.

Keys (after the prefix, `rerank-proxy:` by default; deployment id d, minute m):
    cool:d     cooled until (wall clock); expires with the cooldown
    fail:d     failures in the current window; expires with the window
    rpm:d:m    requests started in minute m         tpm:d:m   tokens reported in minute m
    busy:d     hash replica → "in-flight:timestamp" (fields older than a minute are ignored)
    lat:d      moving-average latency in seconds; expires after the latency ttl
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from ..redis_link import RedisLink, Script
from .state import LocalState, Stats
from .table import Group, Member

USAGE_TTL = 120
BUSY_TTL = 120
BUSY_STALE = 60.0

RESERVE = Script("""
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local limit = tonumber(ARGV[1])
if limit > 0 and used > limit then
  redis.call('DECR', KEYS[1])
  return -limit
end
return used
""")
"""Count one request against a deployment's rpm in this minute, atomically: the new count, or -rpm when full."""
MEANWHILE = "routing state stays in this process"


class _Writer:
    """One event loop's write queue and the task that sends it."""

    __slots__ = ("pending", "wake", "flusher", "closing")

    def __init__(self) -> None:
        self.pending: list[tuple[Any, ...]] = []
        self.wake = asyncio.Event()
        self.flusher: asyncio.Task | None = None
        self.closing = False


class RedisState:
    """`prefix`: of the routing keys (with its ':'), default the link's; `owns_link`: `aclose` closes the
    link's client too (a router with a Redis of its own, as the SDK's)."""

    shared = True

    def __init__(self, link: RedisLink, *, local: LocalState, needs: frozenset[str] = frozenset(),
                 prefix: str | None = None, refresh_interval: float = 0.1, owns_link: bool = False):
        self.link = link
        self.local = local
        self.refresh_interval = refresh_interval
        self._owns_link = owns_link
        self._p = link.prefix if prefix is None else prefix
        self._busy = "busy" in needs
        self._usage = "usage" in needs
        self._latency = "latency" in needs
        self._replica = uuid.uuid4().hex[:12]
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop | None, _Writer | None] = (None, None)
        self._keys: dict[str, tuple[int, list[str], int]] = {}
        self._fetched: dict[str, tuple[float, asyncio.Task | None]] = {}
        self._expiring: dict[str, float] = {}
        """Key → when we last set its TTL, so a key's TTL is not rewritten on every call."""
        link.serve("routing", MEANWHILE, on_back=self._resumed)

    def _resumed(self) -> None:
        """Redis is back (it may have restarted empty): read every alias afresh and set TTLs again."""
        self._fetched.clear()
        self._expiring.clear()

    # -- plumbing ------------------------------------------------------------------------------------
    def _writer(self) -> _Writer:
        loop = asyncio.get_running_loop()
        last_loop, last = self._last
        if loop is last_loop and last is not None:
            return last
        writer = self._writers.get(loop)
        if writer is None:
            writer = self._writers[loop] = _Writer()
            writer.flusher = loop.create_task(self._flush(writer), name="rerank-proxy-redis-writer")
        self._last = (loop, writer)
        return writer

    def _queue(self, *command: Any) -> None:
        writer = self._writer()
        writer.pending.append(command)
        writer.wake.set()

    def _queue_ttl(self, key: str, seconds: int, now: float) -> None:
        """Set a key's TTL once in a while (counters are created by INCR, which keeps no TTL of its own)."""
        if now - self._expiring.get(key, -1e18) < seconds / 4:
            return
        if len(self._expiring) > 10_000:
            self._expiring.clear()
        self._expiring[key] = now
        self._queue("EXPIRE", key, seconds)

    async def _flush(self, writer: _Writer) -> None:
        while not writer.closing:
            await writer.wake.wait()
            writer.wake.clear()
            await self._write(writer)

    async def _write(self, writer: _Writer) -> None:
        commands, writer.pending = writer.pending, []
        client = self.link.client() if commands else None
        if client is None:  # Redis is down: these numbers stay in this process
            return
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            await pipe.execute(raise_on_error=False)
        except self.link.errors as exc:
            self.link.failed(exc)
        else:
            self.link.ok()

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
        client = self.link.client()
        if client is None:
            self._fetched[group.alias] = (started, None)
            return
        try:
            if self._busy:
                pipe = client.pipeline(transaction=False)
                pipe.mget(keys)
                for m in group.members:
                    pipe.hgetall(f"{self._p}busy:{m.id}")
                replies = await pipe.execute()
                values, busy = replies[0], replies[1:]
            else:
                values, busy = await client.mget(keys), None
        except self.link.errors as exc:
            self._fetched[group.alias] = (started, None)
            self.link.failed(exc)
            return
        self.link.ok()
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
        client = self.link.client()
        if client is None:
            return self.local.try_reserve(member, now)
        key = f"{self._p}rpm:{member.id}:{int(now // 60)}"
        try:
            used = await RESERVE(client, (key,), (member.rpm or 0, USAGE_TTL))
        except self.link.errors as exc:
            self.link.failed(exc)
            return self.local.try_reserve(member, now)
        self.link.ok()
        if used < 0:
            self.local.set_used(member.id, now, -used)
            return False
        self.local.set_used(member.id, now, used)
        return True

    async def count_failure(self, member_id: str, now: float, window: float) -> int:
        client = self.link.client()
        if client is None:
            return self.local.count_failure_now(member_id, now, window)
        key = f"{self._p}fail:{member_id}"
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(key, 0, ex=max(int(window), 1), nx=True)
            pipe.incr(key)
            failures = (await pipe.execute(raise_on_error=False))[1]
        except self.link.errors as exc:
            self.link.failed(exc)
            return self.local.count_failure_now(member_id, now, window)
        self.link.ok()
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
        if self.link.down:
            return
        if self._usage and not counted:
            key = f"{self._p}rpm:{member.id}:{int(now // 60)}"
            self._queue("INCR", key)
            self._queue_ttl(key, USAGE_TTL, now)
        if self._busy:
            self._publish_busy(member, now)

    def end(self, member: Member, now: float, latency: float | None, tokens: int | None) -> None:
        self.local.end(member, now, latency, tokens)
        if self.link.down:
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
        if self.link.down or millis <= 0:
            return
        self._queue("SET", f"{self._p}cool:{member_id}", repr(until), "PX", millis)
        self._queue("DEL", f"{self._p}fail:{member_id}")

    def recover(self, member_id: str) -> None:
        self.local.recover(member_id)
        if not self.link.down:
            self._queue("DEL", f"{self._p}cool:{member_id}", f"{self._p}fail:{member_id}")

    def cooled_until(self, member_id: str) -> float:
        return self.local.cooled_until(member_id)

    async def aclose(self) -> None:
        """Write what this loop queued; with a link of its own, close this loop's client too."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        refreshing = [task for _, task in self._fetched.values()
                      if task is not None and not task.done() and task.get_loop() is loop]
        for task in refreshing:
            task.cancel()
        await asyncio.gather(*refreshing, return_exceptions=True)
        writer = self._writers.pop(loop, None)
        self._last = (None, None)
        if writer is not None:
            writer.closing = True
            writer.wake.set()
            if writer.flusher is not None:
                try:
                    await asyncio.wait_for(writer.flusher, timeout=2)  # writes what is queued, then ends
                except (TimeoutError, asyncio.CancelledError):
                    pass
        if self._owns_link:
            await self.link.aclose()
