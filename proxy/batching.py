"""`Batches`: the queue every background writer takes its batches from (spend rows, logging callbacks).

Producers `append` in O(1) without awaiting. The consumer awaits `next_batch()`, which returns as soon as
`batch_size` items wait or the oldest has waited `flush_interval` seconds: batches grow with the rate, so a
write's fixed cost is shared by more items under load, and a lone item still leaves within the interval.
`nudge()` makes the consumer look again at once (its other work, or shutdown); `close()` makes every item
due at once so a drain does not wait for intervals. `backoff` is the one retry schedule of those writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry `attempt` (1, 2, ...): exponential from `base`, capped, jittered down by up to half."""
    return min(cap, base * 2 ** (attempt - 1)) * rng.uniform(0.5, 1)


class Batches(Generic[T]):
    """A FIFO consumed in batches; see the module docstring. One consumer, on the event loop's thread."""

    def __init__(self, batch_size: int, flush_interval: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.closing = False
        self._items: deque[T] = deque()
        self._oldest = 0.0  # clock() when the queue last went from empty to not empty
        self._clock = clock
        self._wake = asyncio.Event()
        self._nudged = False

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: T) -> None:
        items = self._items
        if not items:
            self._oldest = self._clock()
            items.append(item)
            self._wake.set()  # an idle consumer starts its flush interval
        else:
            items.append(item)
            if len(items) == self.batch_size:
                self._wake.set()

    def put_front(self, items: Iterable[T]) -> None:
        """Put items back ahead of the queue, due at once (they have waited already)."""
        self._items.extendleft(reversed(list(items)))
        self._oldest = float("-inf")
        self._wake.set()

    def drain(self) -> list[T]:
        """Every queued item, emptying the queue."""
        items = list(self._items)
        self._items.clear()
        return items

    def nudge(self) -> None:
        """Make the consumer's current wait (`next_batch` or `pause`) return now."""
        self._nudged = True
        self._wake.set()

    def close(self) -> None:
        """From now on every item is due at once, and `next_batch` on an empty queue returns []."""
        self.closing = True
        self.nudge()

    def _due_in(self) -> float | None:
        """Seconds until a batch is due (<= 0: now); None while the queue is empty."""
        if not self._items:
            return None
        if self.closing or len(self._items) >= self.batch_size:
            return 0.0
        return self._oldest + self.flush_interval - self._clock()

    async def next_batch(self) -> list[T]:
        """Wait for a due batch and take it; [] when nudged first, or when closing with nothing queued."""
        while True:
            due_in = self._due_in()
            if due_in is not None and due_in <= 0:
                return [self._items.popleft() for _ in range(min(self.batch_size, len(self._items)))]
            if self.closing or self._nudged:
                self._nudged = False
                return []
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), due_in)

    async def pause(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if nudged (a closing queue sleeps the whole delay: the drain's own
        timeout rules then)."""
        if self.closing:
            await asyncio.sleep(delay)
            return
        self._nudged = False
        deadline = self._clock() + delay
        while not self._nudged and (left := deadline - self._clock()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        self._nudged = False
