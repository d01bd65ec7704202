"""`QueuedSink`: the delivery loop every logging callback shares.

`offer` is synchronous, O(1) and never raises: the request path only appends to a bounded queue (when it is
full the event is dropped and counted, never waited for). A background task takes batches of up to
`batch_size` events — as soon as a batch is full, or `flush_interval` seconds after its first event — and
calls `deliver(batch)`; a failure that `retryable(exc)` allows is retried with jittered exponential
backoff, up to `max_retries` times, then the batch is counted as failed. `stop(timeout)` delivers what is
queued, waiting at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from ..batching import Batches, backoff

log = logging.getLogger("proxy.callbacks")


class QueuedSink:
    """Subclasses implement `deliver(batch)`; counters `delivered`, `failed`, `dropped`; `depth` is queued."""

    name = "sink"

    def __init__(self, *, batch_size: int = 1, flush_interval: float = 0.0, max_queue: int = 10_000,
                 max_retries: int = 0, retry_base: float = 0.5, retry_max: float = 30.0,
                 drain_timeout: float = 10.0) -> None:
        if batch_size < 1 or max_queue < 1 or max_retries < 0:
            raise ValueError("batch_size and max_queue must be positive, max_retries not negative")
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.drain_timeout = drain_timeout
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._batches: Batches[Any] = Batches(batch_size, flush_interval)
        self._in_hand = 0  # events taken off the queue, not yet delivered or failed
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    @property
    def depth(self) -> int:
        return len(self._batches) + self._in_hand

    # request path ---------------------------------------------------------------------------------
    def submit(self, record: dict[str, Any], call: Any) -> None:
        """Queue what `deliver` needs from one finished call (by default the record alone)."""
        self.offer(record)

    def offer(self, item: Any) -> None:
        if len(self._batches) >= self.max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("callback %s: queue full, %d event(s) dropped so far", self.name, self.dropped)
            return
        self._batches.append(item)

    # subclass API ---------------------------------------------------------------------------------
    async def deliver(self, batch: list[Any]) -> None:
        raise NotImplementedError

    def retryable(self, exc: BaseException) -> bool:
        return True

    async def open(self) -> None:
        """Acquire resources (HTTP client...) before the first delivery."""

    async def close(self) -> None:
        """Release them after the last."""

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._batches.closing = False
            await self.open()
            self._task = asyncio.create_task(self._run(), name=f"callback-{self.name}")

    async def stop(self, timeout: float | None = None) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._batches.close()
            await asyncio.wait({task}, timeout=self.drain_timeout if timeout is None else timeout)
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        lost = len(self._batches.drain()) + self._in_hand
        if lost:
            self.failed += lost
            log.error("callback %s: %d event(s) not delivered at shutdown", self.name, lost)
        self._in_hand = 0
        await self.close()

    # background -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = await self._batches.next_batch()
            if not batch:
                if self._batches.closing:
                    return
                continue
            self._in_hand = len(batch)
            await self._deliver_with_retries(batch)
            self._in_hand = 0

    async def _deliver_with_retries(self, batch: list[Any]) -> None:
        attempt = 0
        while True:
            try:
                await self.deliver(batch)
            except Exception as exc:
                attempt += 1
                if attempt > self.max_retries or not self.retryable(exc):
                    self.failed += len(batch)
                    log.warning("callback %s: %d event(s) not delivered (%s)", self.name, len(batch),
                                _describe(exc))
                    return
                delay = backoff(attempt, self.retry_base, self.retry_max, self._rng)
                log.info("callback %s: delivery failed (%s); retry %d/%d in %.2fs", self.name, _describe(exc),
                         attempt, self.max_retries, delay)
                await asyncio.sleep(delay)
            else:
                self.delivered += len(batch)
                return


def _describe(exc: BaseException) -> str:
    """The error's class, plus its text for our own errors only (a user's exception text may carry anything)."""
    if isinstance(exc, DeliveryError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class DeliveryError(Exception):
    """A delivery refused by its destination (e.g. an HTTP error status); the text is safe to log."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable
