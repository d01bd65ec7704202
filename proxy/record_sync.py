"""`RecordSync`: an admin change to a key, end-user or tag reaches every worker and replica within
`model_sync_interval`.

Each process caches key records (`Authenticator`) and end-user and tag records (`Governance`). Every admin
change to one (or to the team or user a key's checks carry) logs what it touched — key digests, end-user
ids, tag names — in the change's own transaction (`spend/key_changes.py`). Every `interval` seconds each
process reads the rows past the last id it applied, in bounded batches each given up after `deadline`, and
evicts those records from the cache of their kind (never refreshes them in place), so the next request
re-reads them. The process that made a change polls at once, so its own caches follow before the admin call
answers.

A database that does not answer evicts nothing: cached records keep serving through an outage, and the next
poll starts from the same id. Old rows are pruned after `retention`, longer than any cache entry can live
(`key_cache_ttl + key_cache_max_stale`), so a process that missed pruned rows holds no entry they concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import StoreUnavailableError
from .periodic import repeat
from .spend.gate import Deadline

log = logging.getLogger("proxy.auth")

BATCH = 1000
"""Change rows read per query; a poll reads batches until one comes back short."""
PRUNE_EVERY = 600.0
MIN_RETENTION = 3600.0


class RecordSync:
    def __init__(self, store: Any, forget: Mapping[str, Callable[[str], None]], *, interval: float,
                 deadline: float = 2.0, retention: float = MIN_RETENTION, batch: int = BATCH,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """`forget`: by change kind ("key", "end_user", "tag"), what evicts one record from its cache; rows of
        other kinds (written by a newer version) are passed over."""
        self._store = store
        self._forget = dict(forget)
        self.interval = interval
        self._call = Deadline(deadline, serial=True)
        self._batch = batch
        self.retention = max(MIN_RETENTION, retention)
        self._clock = clock
        self._wall = wall
        self.last_id: int | None = None
        """The newest change applied; None until the database first answers (then every retained row is read)."""
        self.evicted = 0
        self._lock = asyncio.Lock()
        self._next_prune = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin after the newest change (this process has cached nothing yet), then poll in the background."""
        try:
            self.last_id = await self._call(self._store.last_change)
        except StoreUnavailableError:
            pass  # the first poll that works reads every retained change instead
        self._next_prune = self._clock() + PRUNE_EVERY
        self._task = asyncio.create_task(self._watch(), name="record-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        await repeat(self.interval, self.poll, log,
                     failing="change poll failed (%s); cached keys, end-users and tags keep serving until it works",
                     recovered="change poll works again")

    async def poll(self) -> int:
        """Evict every record changed since the last poll; how many. StoreUnavailableError when the database did
        not answer in time: what was read before that is applied, the rest waits for the next poll."""
        async with self._lock:
            evicted = 0
            while True:
                rows = await self._call(self._store.changes_after, self.last_id or 0, self._batch)
                for ident, kind, token in rows:
                    forget = self._forget.get(kind)
                    if forget is not None:
                        forget(token)
                        evicted += 1
                    self.last_id = ident
                if len(rows) < self._batch:
                    break
            self.evicted += evicted
            if self._clock() >= self._next_prune:
                self._next_prune = self._clock() + PRUNE_EVERY
                await self._call(self._store.prune_changes, self._wall() - timedelta(seconds=self.retention))
            return evicted

    async def after_change(self) -> None:
        """This process just changed records: evict them here now (others follow within `interval`)."""
        try:
            await self.poll()
        except StoreUnavailableError:
            log.warning("a change was saved but not yet applied here; it will be at the next poll")
