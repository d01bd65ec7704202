"""Failed UI sign-ins, limited per client address and in total, so guessing the master key stays slow.

Per address: after `PER_ADDRESS` failures within `WINDOW_SECONDS`, that address is refused (429) until its
oldest failure leaves the window. In total: after `TOTAL` failures within the window from all addresses
together, every sign-in is refused the same way, so guesses spread over many addresses are bounded too
(at the price that such a flood also locks out the real admin for at most one window; the API's own
Bearer key checks are not affected).

Memory is bounded: at most `PER_ADDRESS` times per address, at most `MAX_ADDRESSES` addresses (the least
recently failed are forgotten first, which the total limit still covers), at most `TOTAL` times in all.
The address is the client uvicorn reports: the TCP peer, or X-Forwarded-For when the peer is a trusted
proxy (uvicorn's `FORWARDED_ALLOW_IPS` environment variable, by default only loopback). Behind an
untrusted reverse proxy every client shares its address and the per-address limit acts like the total.
Counts live in this process: with N workers an address gets up to N times the limit.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_SECONDS = 15 * 60
PER_ADDRESS = 10
TOTAL = 100
MAX_ADDRESSES = 10_000

log = logging.getLogger("proxy.ui")


class SignInLimits:
    def __init__(self, clock: Callable[[], float], *, window: float = WINDOW_SECONDS, per_address: int = PER_ADDRESS,
                 total: int = TOTAL, max_addresses: int = MAX_ADDRESSES) -> None:
        self._clock, self._window = clock, window
        self._per_address, self._total, self._max_addresses = per_address, total, max_addresses
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque(maxlen=total)

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may try now."""
        now = self._clock()
        waits = [self._wait(self._all, self._total, now)]
        failures = self._by_address.get(address)
        if failures is not None:
            waits.append(self._wait(failures, self._per_address, now))
        wait = max(w for w in waits)
        return math.ceil(wait) if wait > 0 else None

    def failed(self, address: str) -> None:
        now = self._clock()
        failures = self._by_address.pop(address, None) or deque(maxlen=self._per_address)
        failures.append(now)
        self._by_address[address] = failures  # most recently failed last
        while len(self._by_address) > self._max_addresses:
            self._by_address.popitem(last=False)
        self._all.append(now)
        recent = sum(1 for t in failures if t > now - self._window)
        log.warning("ui sign-in refused: wrong master key from %s (%d failure(s) from it in %d min)",
                    address, recent, self._window // 60)

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)

    @property
    def addresses(self) -> int:
        """How many addresses are remembered (bounded by `max_addresses`)."""
        return len(self._by_address)

    def _wait(self, failures: deque[float], limit: int, now: float) -> float:
        if len(failures) < limit:
            return 0.0
        return failures[0] + self._window - now  # the limit-th most recent failure leaves the window then
