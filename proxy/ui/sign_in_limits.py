"""Failed UI sign-ins, limited per client address and in total, so guessing the master key stays slow.

Per address: after `PER_ADDRESS` failures within `WINDOW_SECONDS`, that address is refused (429) until its
oldest failure leaves the window. In total: after `TOTAL` failures within the window from all addresses
together, every sign-in is refused the same way, so guesses spread over many addresses are bounded too
(at the price that such a flood also locks out the real admin for at most one window; the API's own
Bearer key checks are not affected).

An attempt counts from the moment it is admitted, before the key is compared, and stops counting only when
it signs in (which also forgets that address's failures) or could not be checked (database down): so
concurrent guesses cannot all pass the check before the first of them is counted.

With Redis (the process's `RedisLink`) the counts are shared by every worker and replica (`shared_sign_ins.py`);
each process also keeps what it admitted in its own counts, which decide alone while Redis is down or not
configured. Local memory is bounded: at most `PER_ADDRESS` times per address, at most `MAX_ADDRESSES`
addresses (the least recently failed are forgotten first, which the total limit still covers), at most
`TOTAL` times in all. The address is the client uvicorn reports: the TCP peer, or X-Forwarded-For when the
peer is a trusted proxy (uvicorn's `FORWARDED_ALLOW_IPS`, by default only loopback).
"""

from __future__ import annotations

import itertools
import logging
import math
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..redis_link import RedisLink
from .shared_sign_ins import SharedSignIns

WINDOW_SECONDS = 15 * 60
PER_ADDRESS = 10
TOTAL = 100
MAX_ADDRESSES = 10_000
MEANWHILE = "failed UI sign-ins are counted per process"

log = logging.getLogger("proxy.ui")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in admitted at `at`: counted as a failure until `succeeded` or `released`."""

    address: str
    at: float
    member: str
    """Its id in the shared counts."""
    count: int
    """Attempts from `address` within the window, this one included."""
    shared: bool
    """Counted in Redis (else in this process only)."""


class SignInLimits:
    def __init__(self, clock: Callable[[], float], link: RedisLink | None = None, *, window: float = WINDOW_SECONDS,
                 per_address: int = PER_ADDRESS, total: int = TOTAL, max_addresses: int = MAX_ADDRESSES) -> None:
        self._clock, self._window = clock, window
        self._local = LocalSignIns(window, per_address, total, max_addresses)
        self._link = link
        self._shared = SharedSignIns(link.prefix, window, per_address, total) if link is not None else None
        if link is not None:
            link.serve("ui sign-in", MEANWHILE)
        self._node = uuid.uuid4().hex[:12]
        self._serial = itertools.count()

    async def attempt(self, address: str) -> Attempt | int:
        """The admitted attempt, or the seconds until `address` may try again."""
        now = self._clock()
        member = f"{self._node}:{next(self._serial)}"
        shared = self._shared
        taken = None if shared is None else await self._on_redis(lambda c: shared.take(c, address, now, member))
        if taken is None:  # no Redis, or Redis away: this process's counts decide
            wait = self._local.wait(address, now)
            if wait > 0:
                return math.ceil(wait)
            return Attempt(address, now, member, self._local.take(address, now), shared=False)
        wait, count = taken
        if wait > 0:
            return math.ceil(wait)
        self._local.take(address, now)  # mirrored, so a fallback starts from what this process admitted
        return Attempt(address, now, member, count, shared=True)

    def failed(self, attempt: Attempt) -> None:
        """The key was wrong: the attempt stays counted (logged with the address, never the key)."""
        log.warning("ui sign-in refused: wrong master key from %s (%d failure(s) from it in %d min)",
                    attempt.address, attempt.count, self._window // 60)

    async def succeeded(self, attempt: Attempt) -> None:
        """Signed in: the address's failures are forgotten, and this attempt leaves the total."""
        self._local.forget(attempt.address, attempt.at)
        shared = self._shared
        if shared is not None:  # also when admitted locally: Redis may hold this address's earlier failures
            await self._on_redis(lambda c: shared.forget(c, attempt.address, attempt.member))

    async def released(self, attempt: Attempt) -> None:
        """Nothing could be checked (the database is down): the attempt does not count."""
        self._local.release(attempt.address, attempt.at)
        shared = self._shared
        if attempt.shared and shared is not None:
            await self._on_redis(lambda c: shared.release(c, attempt.address, attempt.member))

    @property
    def addresses(self) -> int:
        """How many addresses this process remembers (bounded by `max_addresses`)."""
        return self._local.addresses

    async def _on_redis(self, call: Callable[[Any], Awaitable[T]]) -> T | None:
        """`call(client)`'s answer, or None while Redis is down (a failure marks the link down)."""
        link = self._link
        client = link.client() if link is not None else None
        if link is None or client is None:
            return None
        try:
            answer = await call(client)
        except link.errors as exc:
            link.failed(exc)
            return None
        link.ok()
        return answer


class LocalSignIns:
    """This process's counts: the times of admitted attempts, per address and in total."""

    def __init__(self, window: float, per_address: int, total: int, max_addresses: int) -> None:
        self._window, self._per_address, self._total, self._max_addresses = window, per_address, total, max_addresses
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque(maxlen=total)

    def wait(self, address: str, now: float) -> float:
        """Seconds until `address` may try again (<= 0: now)."""
        failures = self._by_address.get(address)
        return max(self._wait(self._all, self._total, now),
                   self._wait(failures, self._per_address, now) if failures is not None else 0.0)

    def take(self, address: str, now: float) -> int:
        """Count an attempt at `now`; how many `address` has in the window, this one included."""
        failures = self._by_address.pop(address, None) or deque(maxlen=self._per_address)
        failures.append(now)
        self._by_address[address] = failures  # most recently failed last
        while len(self._by_address) > self._max_addresses:
            self._by_address.popitem(last=False)
        self._all.append(now)
        return sum(1 for t in failures if t > now - self._window)

    def forget(self, address: str, at: float) -> None:
        self._by_address.pop(address, None)
        _discard(self._all, at)

    def release(self, address: str, at: float) -> None:
        failures = self._by_address.get(address)
        if failures is not None:
            _discard(failures, at)
            if not failures:
                del self._by_address[address]
        _discard(self._all, at)

    @property
    def addresses(self) -> int:
        return len(self._by_address)

    def _wait(self, failures: deque[float], limit: int, now: float) -> float:
        if len(failures) < limit:
            return 0.0
        return failures[0] + self._window - now  # the limit-th most recent failure leaves the window then


def _discard(times: deque[float], at: float) -> None:
    try:
        times.remove(at)  # an equal time stands for it as well: the counts only hold times
    except ValueError:
        pass  # already pushed out of the bounded deque
