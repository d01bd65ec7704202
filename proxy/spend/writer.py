"""`SpendWriter`: takes spend events off the request path and writes them to the store in batches.

Guarantees:
- `submit(event)` is synchronous, O(1), never blocks and never raises; call it from the event-loop thread.
- Batches (`proxy.batching.Batches`: up to `batch_size`, or `flush_interval` after the oldest event) are
  written by `Store.write_batch` in a worker thread, waited for at most `write_timeout` seconds (no second
  write starts before the first has returned). `write_batch` is idempotent on request_id, so a retried,
  journaled twice or re-ingested event is stored and counted once.
- With a `spill_path`, the writer *journals* when the database fails a write (connection refused or lost,
  lock timeouts, the deadline) or stalls one past `journal_after` seconds: the batch and the queue are
  appended to the spill file (JSON lines, fsynced), and so is every new event, a batch at a time, until a
  probe write succeeds (jittered backoff up to `retry_max`); then the file is replayed a chunk at a time.
  A crash therefore loses at most ~`journal_after` plus one flush interval of events, in an outage too.
  Without a `spill_path` a failed batch is kept in memory and retried.
- The spill file is bounded by `spill_max_bytes`; when it (or the disk) is full, events wait in memory up
  to `max_queue`, then are dropped, counted in `dropped` and logged at ERROR. A queue holding `max_queue`
  events overflows to the spill file the same way.
- An event the database refuses for what it contains cannot block the others: the batch is bisected, the
  bad event is logged by request_id only and appended to `<spill_path>.rejected`.
- `stop(timeout)` writes what is queued and appends what is left at the timeout to the spill file;
  `start()` replays spill files of earlier runs (or of a crashed worker sharing the path).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..batching import Batches, backoff
from .events import SpendEvent
from .gate import is_transient
from .spill import Claim, SpillFile
from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class SpendWriter:
    """Batches `SpendEvent`s into the `Store` off the request path; see the module docstring for guarantees.

    Metrics: `depth` (events in memory, not yet stored or spilled), `written` (events stored, including
    ones already present), `failures` (failed write attempts), `spilled` (events appended to the spill
    file), `rejected` (events the database refused), `dropped` (lost: overflow without a spill file).
    """

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        max_queue: int = 1_000_000,
        spill_path: Path | None = None,
        retry_max: float = 10.0,
        retry_base: float = 0.05,
        write_timeout: float = 2.0,
        journal_after: float = 0.25,
        replay_chunk: int = 10_000,
        spill_max_bytes: int | None = None,
        probe: Callable[[], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`probe()` (in a thread) says whether the database takes writes again; default `store.ping(write=True)`."""
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be positive")
        self._store = store
        self._max_queue = max_queue
        self._retry_max = retry_max
        self._retry_base = retry_base
        self._rng = rng or random.Random()
        self._write_timeout = write_timeout
        self._journal_after = journal_after
        self._replay_chunk = replay_chunk  # spill-file events read back at a time (~7 MB), not the whole journal
        self._probe = probe or partial(store.ping, write=True)
        self._spill = SpillFile(spill_path, spill_max_bytes) if spill_path is not None else None
        self._rejects = SpillFile(Path(f"{spill_path}.rejected")) if spill_path is not None else None

        self._batches: Batches[SpendEvent] = Batches(batch_size, flush_interval)
        self._pending: list[SpendEvent] = []  # the batch being written; always ahead of the queue
        self._pending_journaled = False  # a copy of _pending is in the spill file (its write stalled)
        self._overflow: list[SpendEvent] = []  # on its way to the spill file
        self._spilling: list[SpendEvent] = []  # being appended to the spill file right now
        self._in_transit: list[SpendEvent] = []  # the queue, being journaled
        self._overflow_ready = asyncio.Event()
        self._replay: Claim | None = None  # spill files being read back, a chunk at a time
        self._claims: list[tuple[int, Claim]] = []  # (value of _acked at which the claim is safe, claim)
        self._acked = 0  # events taken off the front of pending for good (stored or rejected)
        self._spilled_since_ingest = False
        self._journaling = False  # the database failed a write: new events go to the spill file
        self._write_future: asyncio.Future[Any] | None = None  # the last write or probe, maybe still running
        self._task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None

        self.written = self.failures = self.spilled = self.rejected = self.dropped = 0  # see the class docstring

    # metrics --------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return (len(self._batches) + len(self._pending) + len(self._in_transit) + len(self._spilling)
                + len(self._overflow))

    @property
    def journaling(self) -> bool:
        """True while the database is failing and new events go straight to the spill file."""
        return self._journaling

    def spill_bytes(self) -> int:
        """Size of the spill file (and claims being ingested); 0 without one. Reads the file system."""
        return self._spill.size() if self._spill is not None else 0

    # request path ---------------------------------------------------------------------------------

    def submit(self, event: SpendEvent) -> None:
        """Queue an event; O(1), never blocks or raises."""
        if self._journaling:
            self._to_spill(event)
        elif len(self._batches) + len(self._pending) < self._max_queue:
            self._batches.append(event)
        else:
            self._to_spill(event)

    def _to_spill(self, event: SpendEvent) -> None:
        if self._spill is not None and len(self._overflow) < self._max_queue:
            self._overflow.append(event)
            self._overflow_ready.set()
            return
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            log.error("spend queue full and the spill file unavailable or full: %d events dropped", self.dropped)

    # lifecycle ------------------------------------------------------------------------------------

    async def start(self, *, journaling: bool = False) -> None:
        """Re-ingest spill files from earlier runs, then start the background writer (idempotent).

        `journaling`: the database is not there yet; journal every event until `probe` answers True."""
        if self._task is not None:
            return
        self._batches.closing = False
        if journaling and self._spill is not None:
            self._journaling = True
        else:
            await self._ingest()
        self._task = asyncio.create_task(self._run(), name="spend-writer")
        if self._spill is not None:
            self._spill_task = asyncio.create_task(self._spill_overflow_forever(), name="spend-spill")

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, waiting at most `timeout` seconds; spill the rest to `spill_path`.

        On a writer that was never started nothing is written: the queue goes straight to the spill file.
        """
        task, self._task = self._task, None
        if task is not None:
            self._batches.close()
            await asyncio.wait({task}, timeout=timeout)
            if not task.done():
                task.cancel()  # an in-flight write may still land: the spilled copy is then a no-op
            await asyncio.gather(task, return_exceptions=True)
        if self._spill_task is not None:
            self._spill_task.cancel()
            await asyncio.gather(self._spill_task, return_exceptions=True)
            self._spill_task = None
        await self._spill_leftovers()

    # background -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        batches = self._batches
        while True:
            if self._journaling:
                if batches.closing:
                    return
                attempt += 1
                await batches.pause(self._backoff(attempt))
                if await self._database_answers():
                    log.warning("database answers again: re-ingesting the journaled spend events")
                    self._journaling, self._spilled_since_ingest, attempt = False, True, 0
                continue
            if not self._pending:
                if self._spilled_since_ingest and len(batches) < batches.batch_size and not batches.closing:
                    await self._ingest()
                batch = await batches.next_batch()
                if not batch:
                    if batches.closing:
                        return
                    continue  # nudged: the spill file has events to take back
                self._pending, self._pending_journaled = batch, False
            try:
                await self._write_front(len(self._pending))
                attempt = 0
            except Exception as exc:  # noqa: BLE001 - transient by now: _write_front absorbs refusals
                self.failures += 1
                attempt += 1
                if await self._journal_backlog():
                    log.warning("spend write failed (%s); journaling spend events to %s until the database "
                                "answers", type(exc).__name__, self._spill.path if self._spill else None)
                    continue
                delay = self._backoff(attempt)
                log.warning("spend write failed (%s); keeping %d events, retry in %.2fs",
                            type(exc).__name__, self.depth, delay)
                await batches.pause(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self._retry_base, self._retry_max, self._rng)

    async def _bounded(self, fn: Callable[..., T], *args: Any, journal_after: float | None = None) -> T:
        """`fn(*args)` in a thread, waited for at most `write_timeout` (TimeoutError, transient); never two at once.

        With `journal_after`, a call still running after that many seconds has the backlog journaled while it
        goes on: a database that stalls (rather than refuses) would otherwise keep `write_timeout` seconds of
        events in memory only, lost to a kill -9."""
        if self._write_future is not None and not self._write_future.done():
            raise TimeoutError("the previous database call has not returned yet")
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._write_future = future
        timeout = self._write_timeout
        if journal_after is not None and journal_after < timeout:
            done, _ = await asyncio.wait({future}, timeout=journal_after)
            if not done and await self._journal_backlog(stalled=True):
                log.warning("spend write stalled for %.2fs; journaling spend events to %s until the database "
                            "answers", journal_after, self._spill.path if self._spill else None)
            timeout -= journal_after
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    async def _database_answers(self) -> bool:
        try:
            return bool(await self._bounded(self._probe))
        except Exception:  # noqa: BLE001 - any failure: still down
            return False

    async def _journal_backlog(self, *, stalled: bool = False) -> bool:
        """Append the pending batch and the queue to the spill file; True when they are safe there.

        `stalled`: the pending batch is still being written. It is journaled as a copy (if the write lands
        too, the replay is a no-op) and stays pending until the write ends; new events go to the journal."""
        if self._spill is None or self._batches.closing or (stalled and self._journaling):
            return False
        self._in_transit = queued = self._batches.drain()  # counted in `depth`, spilled by `stop` if cut short
        backlog = queued if self._pending_journaled else [*self._pending, *queued]
        appended = not backlog or await self._append_to_spill(backlog)
        self._in_transit = []
        if not appended:
            self._batches.put_front(queued)
            return False
        self._journaling = True  # only now: `journaling` means the backlog is on disk
        for event in self._batches.drain():  # submitted while the append ran
            self._to_spill(event)
        self._spilled_since_ingest = True
        if stalled:
            self._pending_journaled = True
            return True
        self._acked += len(self._pending)  # safe in the spill file: claims holding them may be released
        self._pending, self._pending_journaled = [], False
        self._release_safe_claims()
        return True

    async def _write_front(self, count: int) -> None:
        """Write the first `count` pending events; bisect around events the database refuses."""
        batch = self._pending[:count]
        try:
            await self._bounded(self._store.write_batch, batch,
                                journal_after=self._journal_after if count == len(self._pending) else None)
        except Exception as exc:
            if is_transient(exc):
                raise
            if count > 1:
                await self._write_front(count // 2)
                await self._write_front(count - count // 2)
                return
            await self._reject(batch[0], exc)
            self.rejected += 1
        else:
            self.written += count
        del self._pending[:count]
        self._acked += count
        self._release_safe_claims()

    async def _reject(self, event: SpendEvent, exc: Exception) -> None:
        log.error(
            "spend event %s refused by the database (%s); kept in the rejected file",
            event.request_id,
            type(exc).__name__,
        )
        if self._rejects is not None:
            try:
                await asyncio.to_thread(self._rejects.append, [event])
            except OSError as error:
                log.error("cannot write the rejected-events file (%s)", type(error).__name__)

    async def _spill_overflow_forever(self) -> None:
        while True:
            await self._overflow_ready.wait()
            self._overflow_ready.clear()
            while self._overflow:
                self._spilling, self._overflow = self._overflow, []
                if not await self._append_to_spill(self._spilling):
                    self._overflow[:0] = self._spilling
                    self._spilling = []
                    await asyncio.sleep(self._retry_max)
                    break
                self._spilling = []
                self._spilled_since_ingest = True
                if not self._journaling and len(self._batches) < self._batches.batch_size:
                    self._batches.nudge()  # an idle writer takes the file back now, not after its flush interval
            if self._overflow:
                self._overflow_ready.set()

    async def _append_to_spill(self, events: list[SpendEvent]) -> bool:
        assert self._spill is not None
        try:
            await asyncio.to_thread(self._spill.append, events)
        except OSError as exc:
            log.error("cannot append %d spend events to the spill file (%s)", len(events), type(exc).__name__)
            return False
        self.spilled += len(events)
        return True

    async def _ingest(self) -> None:
        """Put the next chunk of the spill files (claimed on the first call) at the front of the queue."""
        self._spilled_since_ingest = False
        if self._spill is None:
            return
        try:
            if self._replay is None:
                claim = await asyncio.to_thread(self._spill.claim)
                if not claim.paths:
                    return
                log.info("re-ingesting spend events from %d spill file(s)", len(claim.paths))
                self._replay = claim
            chunk = await asyncio.to_thread(self._replay.read, self._replay_chunk)
        except OSError as exc:
            log.error("cannot read the spill file (%s)", type(exc).__name__)
            return
        self._batches.put_front(chunk)
        if not self._replay.done:
            self._spilled_since_ingest = True  # the next chunk once this one is (nearly) written
            return
        # safe once everything now queued is acked: earlier chunks may still sit behind this one
        self._claims.append((self._acked + len(self._pending) + len(self._batches), self._replay))
        self._replay = None
        self._release_safe_claims()

    def _release_safe_claims(self) -> None:
        while self._claims and self._claims[0][0] <= self._acked:
            self._claims.pop(0)[1].release()

    async def _spill_leftovers(self) -> None:
        # `_spilling` is set only if stop() cancelled that append midway: it may be in the file already,
        # in which case it is there twice, which is harmless (writes are idempotent on request_id)
        leftovers = [*self._pending, *self._in_transit, *self._batches.drain(), *self._spilling, *self._overflow]
        self._pending, self._in_transit, self._spilling, self._overflow = [], [], [], []
        if leftovers:
            if self._spill is not None and await self._append_to_spill(leftovers):
                log.warning("database unavailable at shutdown: %d spend events spilled", len(leftovers))
            else:
                self.dropped += len(leftovers)
                log.error("database unavailable at shutdown: %d spend events lost", len(leftovers))
                return  # keep the claimed files: their events are not safe anywhere else
        if self._replay is not None:  # its unread events are still only in its files: the next start takes them
            self._replay.abandon()
            self._replay = None
        for _, claim in self._claims:
            claim.release()
        self._claims.clear()
