"""Where cached bytes live: this process (`LocalStore`, an LRU bounded in bytes) or Redis (`RedisStore`).

Both answer `get_many(keys)` in one step (Redis: one MGET round trip) and take writes with `put_many`,
which never makes a request wait: the local store writes at once, Redis in a background task. A Redis
that is down or slower than `timeout` makes `get_many` return None (the caller bypasses the cache); the
`RedisLink` then stays down for a few seconds so later requests do not wait on it again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

ENTRY_OVERHEAD = 120
"""Bytes a local entry costs beyond its key and value (the dict slot, the tuple, two bytes objects)."""
MAX_PENDING_WRITES = 256
"""Redis write batches in flight at once; more are dropped (a cache write is never worth a backlog)."""


class LocalStore:
    """An in-process LRU of bytes, bounded by the bytes it holds (keys, values and their overhead)."""

    shared = False

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._items)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.get_now(keys)

    def get_now(self, keys: Sequence[str]) -> list[bytes | None]:
        items, now = self._items, self._clock()
        found: list[bytes | None] = []
        for key in keys:
            item = items.get(key)
            if item is None:
                found.append(None)
            elif item[1] <= now:
                self._drop(key)
                found.append(None)
            else:
                items.move_to_end(key)
                found.append(item[0])
        return found

    def put_many(self, entries: Sequence[tuple[str, bytes]], ttl: float) -> None:
        items, expires = self._items, self._clock() + ttl
        for key, value in entries:
            cost = len(key) + len(value) + ENTRY_OVERHEAD
            if cost > self.max_bytes:
                continue
            if key in items:
                self._drop(key)
            items[key] = (value, expires)
            self.size += cost
        while self.size > self.max_bytes:
            self._drop(next(iter(items)))

    def _drop(self, key: str) -> None:
        value, _ = self._items.pop(key)
        self.size -= len(key) + len(value) + ENTRY_OVERHEAD

    async def aclose(self) -> None:
        self._items.clear()
        self.size = 0


class RedisStore:
    """Cache entries in Redis, shared by every replica, reached through a `RedisLink` (redis_link.py).

    `timeout` bounds every look-up and write on top of the link's own; a failure counts in `unavailable`
    and marks the link down (the link warns, once per outage), except a miss of this tighter deadline on a
    link shared with routing and limits: slow is not down for them.
    """

    shared = True

    def __init__(self, link: Any, *, timeout: float, own_link: bool = False):
        self.link = link
        self.timeout = timeout
        self.unavailable = 0
        """Look-ups and writes skipped or failed because Redis did not answer in time."""
        self._own_link = own_link
        self._tasks: set[asyncio.Task[None]] = set()
        link.serve("result cache", "the result cache is bypassed")

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        client = self.link.client()
        if client is None:
            self.unavailable += 1
            return None
        try:
            async with asyncio.timeout(self.timeout):
                values = await client.mget(keys)
        except self.link.errors as exc:
            self._failed(exc)
            return None
        self.link.ok()
        return values

    def put_many(self, entries: Sequence[tuple[str, bytes]], ttl: float) -> None:
        if not entries or len(self._tasks) >= MAX_PENDING_WRITES:
            return
        client = self.link.client()  # last: while Redis is down this may be the one trial call
        if client is None:
            return
        task = asyncio.get_running_loop().create_task(self._write(client, entries, max(int(ttl * 1000), 1)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, client: Any, entries: Sequence[tuple[str, bytes]], ttl_ms: int) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                pipe = client.pipeline(transaction=False)
                for key, value in entries:
                    pipe.set(key, value, px=ttl_ms)
                await pipe.execute()
        except self.link.errors as exc:
            self._failed(exc)
        else:
            self.link.ok()

    async def settle(self) -> None:
        """Wait for the writes in flight (tests and shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _failed(self, exc: BaseException) -> None:
        self.unavailable += 1
        if self._own_link or type(exc) is not TimeoutError:  # TimeoutError itself: our `timeout`, not the link's
            self.link.failed(exc)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout * 2)
        if self._own_link:
            await self.link.aclose()
