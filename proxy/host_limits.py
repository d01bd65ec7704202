"""Calls in flight per upstream host and in total, so one stuck host only queues its own calls.

A call takes a slot of its host, then one of the total; both are given back when it ends. Waiting for either
happens inside the call's deadline. With `max_per_host` below `max_total`, a host that stops answering holds
at most `max_per_host` slots: calls to every other host still find theirs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable


class Slots:
    """A counting limit whose uncontended path costs no await (`asyncio.Semaphore.acquire` is a coroutine)."""

    __slots__ = ("free", "_waiters")

    def __init__(self, size: int):
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self, deadline: float | None) -> None:
        async with asyncio.timeout_at(deadline):
            while self.free <= 0:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake_one()  # woken, but leaving (timeout, cancellation): pass the wake-up on
                    raise
        self.free -= 1

    def give_back(self) -> None:
        self.free += 1
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters and self.free > 0:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class HostLimits:
    """`max_total` calls in flight, at most `max_per_host` of them to one host (0: no per-host limit)."""

    def __init__(self, max_total: int, max_per_host: int = 0):
        self.max_per_host = max_per_host if 0 < max_per_host < max_total else max_total
        self.total = Slots(max_total)
        self.hosts: dict[Hashable, Slots] = {}
        """Host → its slots; `host(key)` makes them (the pool reads this first, to skip that call)."""

    def host(self, key: Hashable) -> Slots:
        slots = self.hosts.get(key)
        if slots is None:
            if len(self.hosts) > 4096:  # hosts come from config: a handful; forget the idle ones all the same
                self.hosts = {k: s for k, s in self.hosts.items() if s.free < self.max_per_host}
            slots = self.hosts[key] = Slots(self.max_per_host)
        return slots

    async def take(self, key: Hashable, deadline: float | None) -> Slots:
        """Take a slot of `key`'s host and one of the total; give both back with `give_back(host)`."""
        host = self.host(key)
        if not host.try_take():
            await host.take(deadline)
        if not self.total.try_take():
            try:
                await self.total.take(deadline)
            except BaseException:
                host.give_back()
                raise
        return host

    def give_back(self, host: Slots) -> None:
        total = self.total  # Slots.give_back twice, inlined: two calls fewer on every upstream call
        total.free += 1
        if total._waiters:
            total._wake_one()
        host.free += 1
        if host._waiters:
            host._wake_one()


__all__ = ["HostLimits", "Slots"]
