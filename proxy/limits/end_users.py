"""End-user records (limits, budgets, blocked) for the request path: a short TTL cache over the store.

The TTL is the key cache's, so an admin change reaches every replica within it; the admin API forgets an
end-user at once in the replica that served the change. A database that cannot answer never fails a call:
the last known record (or none) is used and a warning logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("proxy.limits")

MAX_ENTRIES = 100_000


class EndUserRecords:
    def __init__(self, store: Any, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Any]] = {}

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def get(self, user_id: str) -> Any:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            record = await asyncio.to_thread(self._store.get_customer, user_id)
        except Exception as exc:  # the database is down: limits we knew keep applying, none are invented
            log.warning("end-user lookup failed (%s); using the last known record", type(exc).__name__)
            return cached[1] if cached is not None else None
        if len(self._cache) >= MAX_ENTRIES:
            self.prune()
        self._cache[user_id] = (now + self._ttl, record)
        return record

    def prune(self) -> None:
        now = time.monotonic()
        for user_id in [u for u, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[user_id]
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.clear()
