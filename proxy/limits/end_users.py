"""End-user records (limits, budgets, blocked) for the request path: a TTL cache over the `DatabaseGate`.

An admin change is evicted at once in the process that served it and, through the change log
(`record_sync.py`), in every other within `model_sync_interval`; the TTL (the key cache's) bounds it when
that log cannot be read. A database that does not answer within the gate's
deadline never fails or stalls a call: the last known record is used however old (a blocked end-user stays
blocked through an outage), and an end-user never seen before runs without end-user limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import StoreUnavailableError
from ..ttl_cache import TtlCache

MAX_ENTRIES = 100_000


class EndUserRecords:
    """End-user records by default; `kind` and `fetch` (a sync store read) serve other records, e.g. tags."""

    def __init__(self, gate: Any, ttl: float, *, clock: Callable[[], float] = time.monotonic,
                 kind: str = "end_user", fetch: Callable[[str], Any] | None = None) -> None:
        self._gate = gate
        self._kind = kind
        self._fetch = fetch
        self._cache: TtlCache[str, Any] = TtlCache(ttl, MAX_ENTRIES, max_stale=math.inf, clock=clock)
        self._evictions = 0
        """Counts `forget` calls: a read that started before one is not cached (it may predate the change)."""

    def forget(self, user_id: str) -> None:
        self._evictions += 1
        self._cache.forget(user_id)

    async def get(self, user_id: str) -> Any:
        cached = self._cache.get(user_id)
        if cached is not None and cached[1]:
            return cached[0]
        fetch = self._fetch or self._gate.store.get_customer
        future = self._gate.read((self._kind, user_id), fetch, user_id,
                                 then=partial(self._remember, user_id, self._evictions))
        try:
            if future is None:
                raise StoreUnavailableError()
            return await self._gate.wait(future)
        except StoreUnavailableError:  # limits we knew keep applying, none are invented
            return cached[0] if cached is not None else None

    def _remember(self, user_id: str, evictions: int, record: Any) -> Any:
        if evictions == self._evictions:
            self._cache.put(user_id, record)
        return record
