"""`DatabaseGate`: the database as the request path sees it — every read has a deadline and an outage policy.

A request never waits on the database for longer than `timeout`: reads run on the gate's own few threads
(never the default executor the spend writer and admin calls share), one read per key at a time, and the
caller stops waiting at the deadline while the read finishes in the background and fills the cache. After a
read times out or the database is unreachable, the gate stays *down* for `pause` seconds: callers serve what
they have cached (or refuse fast) and no new read starts, so a hung database costs each request at most one
deadline, never a thread per request. A burst of reads waits for a gate thread in a short queue (`queued` per
thread, within the same deadline); when threads and queue are all taken, new reads are refused at once. A
database that is down at start-up is connected (and migrated) in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from ..errors import ProxyError, StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError, OSError)


def is_transient(exc: BaseException) -> bool:
    """True for "the database is unavailable right now" (retry, serve stale); False for bad data."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class DatabaseGate:
    def __init__(self, store: Any, *, timeout: float = 0.5, pause: float = 1.0, threads: int = 4, queued: int = 8,
                 connected: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.timeout = timeout
        self.pause = pause
        self._capacity = threads * (1 + queued)  # reads running or waiting for a thread
        self._clock = clock
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="db-read")
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._busy = 0
        self._down_until = 0.0
        self.connected = connected
        """False until the schema is migrated (the database was unreachable at start-up)."""
        self.timeouts = 0
        self.failures = 0
        self._connector: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        """True when a new read may start: connected, not paused after a failure, a thread or queue place free."""
        return self.connected and self._clock() >= self._down_until and self._busy < self._capacity

    def read(self, key: Hashable, fn: Callable[..., Any], *args: Any,
             then: Callable[[Any], T] = lambda value: value) -> asyncio.Future[T] | None:
        """The in-flight read for `key`, else a new one: `fn(*args)` in a gate thread, then `then(result)` on
        the event loop (where caches may be filled safely). None when the gate is not `up`."""
        future = self._inflight.get(key)
        if future is not None:
            return future
        if not self.up:
            return None
        self._busy += 1
        future = asyncio.ensure_future(self._run(then, fn, *args))
        self._inflight[key] = future
        future.add_done_callback(lambda done: self._settle(key, done))
        return future

    async def _run(self, then: Callable[[Any], T], fn: Callable[..., Any], *args: Any) -> T:
        return then(await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args))

    async def wait(self, future: asyncio.Future[T]) -> T:
        """The read's result within the deadline; StoreUnavailableError on timeout or an unreachable database."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            self.timeouts += 1
            self._trip()
            raise StoreUnavailableError() from None
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailableError() from None
            raise

    async def fetch(self, key: Hashable, fn: Callable[..., Any], *args: Any,
                    then: Callable[[Any], T] = lambda value: value) -> T:
        """`read` then `wait`: StoreUnavailableError at once when the gate is down."""
        future = self.read(key, fn, *args, then=then)
        if future is None:
            raise StoreUnavailableError()
        return await self.wait(future)

    def _settle(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        self._busy -= 1
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self._down_until = 0.0  # a late answer is proof enough that the database is back
        elif is_transient(exc):
            self.failures += 1
            self._trip()

    def _trip(self) -> None:
        if self._clock() >= self._down_until:
            log.warning("database read failed or timed out; serving cached records for %.1fs", self.pause)
        self._down_until = self._clock() + self.pause

    # start-up ---------------------------------------------------------------------------------------

    def connect_later(self, connect: Callable[[], object], retry_max: float = 10.0) -> None:
        """Run `connect` (migrate) in the background until it succeeds; `connected` turns True then."""
        async def keep_trying() -> None:
            delay = 0.5
            while True:
                try:
                    await asyncio.to_thread(connect)
                except Exception as exc:  # noqa: BLE001 - any failure: the database is not usable yet
                    log.warning("database still unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(retry_max, delay * 2)
                else:
                    self.connected = True
                    log.warning("database connected")
                    return

        self._connector = asyncio.create_task(keep_trying(), name="database-connect")

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


class Deadline:
    """Store calls off the event loop for background jobs and admin calls, each given up after `seconds`.

    A timeout or a driver error comes out as StoreUnavailableError (our own errors pass through). `serial` (a
    poll that repeats): while a given-up call still runs in its thread the next one is refused at once, so a
    hung database holds one thread, not one more per poll until the default executor is full."""

    def __init__(self, seconds: float, *, serial: bool = False) -> None:
        self.seconds = seconds
        self._serial = serial
        self._inflight: asyncio.Future[Any] | None = None

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        if self._inflight is not None and not self._inflight.done():
            raise StoreUnavailableError("the previous database call has not returned")
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        if self._serial:
            self._inflight = future
            future.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no warning
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.seconds)
        except TimeoutError:
            raise StoreUnavailableError(f"the database did not answer within {self.seconds:g}s") from None
        except ProxyError:
            raise
        except Exception as exc:  # noqa: BLE001 - a driver error is the database being unavailable
            log.debug("store call failed: %r", exc)
            raise StoreUnavailableError() from None
