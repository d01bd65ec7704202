"""`SpendWriter`: batching, surviving database outages, spilling at shutdown and on overflow, re-ingesting."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from proxy.spend.events import SpendEvent
from proxy.spend.spill import SpillFile, decode, encode
from proxy.spend.store import Store
from proxy.spend.writer import SpendWriter

KEY = hashlib.sha256(b"sk-writer-test").hexdigest()

Events = Callable[..., SpendEvent]
Outage = Callable[[], AbstractContextManager[None]]


class RecordingStore(Store):
    """The real store, remembering the size of every batch it was asked to write."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine)
        self.batches: list[int] = []

    def write_batch(self, events: Sequence[SpendEvent]) -> int:
        self.batches.append(len(events))
        return super().write_batch(events)


async def eventually(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Poll until `condition()` holds; fail (not a timing assertion: a hang guard) after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        await asyncio.sleep(0.01)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def many(spend_event: Events, count: int, prefix: str = "r", cost: str = "0.01") -> list[SpendEvent]:
    return [spend_event(f"{prefix}{i:04d}", key_hash=KEY, end_user="acme", cost=cost) for i in range(count)]


@pytest.fixture
def keyed_store(store: Store) -> Store:
    store.create_key(KEY)
    return store


def stored_rows(store: Store) -> int:
    return store.spend_logs(size=1)[1]


async def test_full_batches_are_written_without_waiting_for_the_flush_interval(
    keyed_store: Store, spend_event: Events
) -> None:
    recording = RecordingStore(keyed_store)
    writer = SpendWriter(recording, batch_size=50, flush_interval=60)
    await writer.start()
    for event in many(spend_event, 200):
        writer.submit(event)
    await eventually(lambda: writer.written == 200, "200 events written")
    await writer.stop()
    assert recording.batches == [50, 50, 50, 50]
    assert stored_rows(keyed_store) == 200
    assert keyed_store.key_spend(KEY) == Decimal(2)
    assert keyed_store.end_user_spend("acme") == Decimal(2)
    assert (writer.depth, writer.failures, writer.spilled, writer.dropped) == (0, 0, 0, 0)


async def test_a_lone_event_is_written_after_the_flush_interval(
    keyed_store: Store, spend_event: Events
) -> None:
    writer = SpendWriter(keyed_store, batch_size=500, flush_interval=0.02)
    await writer.start()
    writer.submit(spend_event("alone", key_hash=KEY))
    await eventually(lambda: writer.written == 1, "the lone event written")
    await writer.stop()
    assert stored_rows(keyed_store) == 1


class SlowStore(RecordingStore):
    """Each write takes 30 ms, as a busy database would: events keep arriving while it writes."""

    def write_batch(self, events: Sequence[SpendEvent]) -> int:
        time.sleep(0.03)
        return super().write_batch(events)


async def test_batches_grow_with_the_rate_instead_of_following_each_write_at_once(
    keyed_store: Store, spend_event: Events
) -> None:
    """A write happens only once the oldest queued event is `flush_interval` old (or a batch is full), so
    300 events over ~0.6 s make at most one batch per interval; writing again as soon as the last write
    ended made one small batch per 30 ms write."""
    slow = SlowStore(keyed_store)
    writer = SpendWriter(slow, batch_size=1000, flush_interval=0.2)
    await writer.start()
    started = asyncio.get_running_loop().time()
    for event in many(spend_event, 300):
        writer.submit(event)
        await asyncio.sleep(0.002)
    elapsed = asyncio.get_running_loop().time() - started
    await eventually(lambda: writer.written == 300, "300 events written")
    await writer.stop()
    assert sum(slow.batches) == 300
    assert len(slow.batches) <= elapsed / 0.2 + 2, (slow.batches, elapsed)


async def test_stop_writes_what_is_still_queued(keyed_store: Store, spend_event: Events) -> None:
    writer = SpendWriter(keyed_store, batch_size=7, flush_interval=60)
    for event in many(spend_event, 30):
        writer.submit(event)  # before start: queued, not lost
    assert writer.depth == 30
    await writer.start()
    await writer.stop(timeout=10)
    assert writer.written == 30 and writer.depth == 0
    assert stored_rows(keyed_store) == 30


async def test_the_writer_survives_a_database_outage_and_writes_every_row_once(
    keyed_store: Store, spend_event: Events, db_outage: Outage
) -> None:
    writer = SpendWriter(keyed_store, batch_size=10, flush_interval=0.01, retry_max=0.05)
    await writer.start()
    with db_outage():
        for event in many(spend_event, 30):
            writer.submit(event)
        await eventually(lambda: writer.failures >= 3, "several failed write attempts")
        assert writer.written == 0 and writer.depth == 30
    await eventually(lambda: writer.written == 30, "all events written once the database is back")
    await writer.stop()
    assert stored_rows(keyed_store) == 30
    assert keyed_store.key_spend(KEY) == Decimal("0.3")
    assert keyed_store.end_user_spend("acme") == Decimal("0.3")
    assert keyed_store.get_proxy_spend().spend == Decimal("0.3")


async def test_stop_with_the_database_down_spills_and_the_next_start_ingests(
    keyed_store: Store, spend_event: Events, db_outage: Outage, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    events = many(spend_event, 20)
    keyed_store.write_batch(events[:5])  # already stored: the spilled copies must not count again
    first = SpendWriter(keyed_store, spill_path=spill, flush_interval=0.01, retry_max=0.05)
    await first.start()
    with db_outage():
        for event in events:
            first.submit(event)
        await first.stop(timeout=0.3)
        assert (first.spilled, first.depth, first.dropped) == (20, 0, 0)
        assert [decode(line) for line in spill.read_text().splitlines()] == events

    second = SpendWriter(keyed_store, spill_path=spill, flush_interval=0.01)
    await second.start()
    await eventually(lambda: second.written == 20 and not spill.exists(), "the spill file ingested")
    await second.stop()
    assert stored_rows(keyed_store) == 20
    assert keyed_store.key_spend(KEY) == Decimal("0.2")
    assert keyed_store.get_proxy_spend().spend == Decimal("0.2")


async def test_a_full_queue_spills_the_overflow_instead_of_dropping_it(
    keyed_store: Store, spend_event: Events, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    writer = SpendWriter(keyed_store, max_queue=10, batch_size=5, spill_path=spill, flush_interval=60)
    for event in many(spend_event, 18):  # not started yet: nothing leaves the queue
        writer.submit(event)
    assert writer.depth == 18 and writer.dropped == 0
    await writer.start()
    await eventually(lambda: writer.spilled == 8, "the overflow spilled")
    # once the queue runs low the writer takes its own spill file back
    await eventually(lambda: writer.written == 18 and not spill.exists(), "queue and overflow written")
    await writer.stop()
    assert stored_rows(keyed_store) == 18
    assert keyed_store.key_spend(KEY) == Decimal("0.18")


async def test_once_a_write_fails_every_event_is_journaled_until_the_database_answers(
    keyed_store: Store, spend_event: Events, db_outage: Outage, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    writer = SpendWriter(keyed_store, batch_size=5, spill_path=spill, flush_interval=0.01, retry_max=0.05)
    await writer.start()
    events = many(spend_event, 25)
    with db_outage():
        for event in events[:10]:
            writer.submit(event)
        await eventually(lambda: writer.journaling, "journaling after the first failed write")
        for event in events[10:]:
            writer.submit(event)
        await eventually(lambda: writer.depth == 0, "every event on disk, none only in memory")
        assert writer.spilled == 25 and writer.written == 0 and writer.spill_bytes() > 0
        assert {decode(line).request_id for line in spill.read_text().splitlines()} == {
            e.request_id for e in events}
    await eventually(lambda: writer.written == 25 and not spill.exists(), "the journal replayed")
    assert not writer.journaling
    await writer.stop()
    assert stored_rows(keyed_store) == 25
    assert keyed_store.key_spend(KEY) == Decimal("0.25")


async def test_a_full_journal_keeps_events_in_memory_then_drops_and_counts_them(
    keyed_store: Store, spend_event: Events, db_outage: Outage, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    writer = SpendWriter(keyed_store, batch_size=5, max_queue=5, spill_path=spill, spill_max_bytes=1,
                         flush_interval=0.01, retry_max=0.05)
    await writer.start()
    with db_outage():
        for event in many(spend_event, 5):
            writer.submit(event)
        await eventually(lambda: writer.failures >= 2, "failed writes")
        assert not writer.journaling and writer.depth == 5  # the journal is full: kept in memory
    await eventually(lambda: writer.written == 5, "written once the database is back")
    await writer.stop()
    overflowing = SpendWriter(keyed_store, max_queue=2, spill_path=spill, spill_max_bytes=1)
    for event in many(spend_event, 6, prefix="o"):  # never started: 2 queued, 2 waiting for the disk, 2 lost
        overflowing.submit(event)
    assert (overflowing.depth, overflowing.dropped) == (4, 2)


async def test_without_a_spill_file_overflow_is_dropped_and_counted(
    store: Store, spend_event: Events
) -> None:
    writer = SpendWriter(store, max_queue=3)
    for event in many(spend_event, 5):
        writer.submit(event)
    assert (writer.depth, writer.dropped) == (3, 2)


async def test_an_event_the_database_refuses_does_not_block_the_others(
    keyed_store: Store, spend_event: Events, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    events = many(spend_event, 9)
    events.insert(4, spend_event("broken", model_alias=None))  # NOT NULL column
    writer = SpendWriter(keyed_store, batch_size=100, flush_interval=0.01, spill_path=spill)
    await writer.start()
    for event in events:
        writer.submit(event)
    await eventually(lambda: writer.written + writer.rejected == 10, "every event stored or rejected")
    await writer.stop()
    assert (writer.written, writer.rejected) == (9, 1)
    assert stored_rows(keyed_store) == 9
    rejected = Path(f"{spill}.rejected").read_text().splitlines()
    assert [decode(line).request_id for line in rejected] == ["broken"]
    assert not spill.exists()  # rejected events are not re-ingested


async def test_start_ingests_claims_orphaned_by_a_dead_worker_but_not_live_ones(
    keyed_store: Store, spend_event: Events, tmp_path: Path
) -> None:
    spill = tmp_path / "spend.jsonl"
    orphan = tmp_path / "spend.jsonl.0a1b.ingesting"
    live = tmp_path / "spend.jsonl.2c3d.ingesting"
    orphan.write_text("".join(encode(e) + "\n" for e in many(spend_event, 3, prefix="orphan")))
    live.write_text("".join(encode(e) + "\n" for e in many(spend_event, 4, prefix="live")))
    SpillFile(spill).append(many(spend_event, 2, prefix="spill"))
    with locked(live):  # another, live worker owns this claim
        writer = SpendWriter(keyed_store, spill_path=spill, flush_interval=0.01)
        await writer.start()
        await eventually(lambda: writer.written == 5, "orphaned and spilled events written")
        await writer.stop()
        assert not orphan.exists() and not spill.exists() and live.exists()
    assert {row.request_id[:5] for row in keyed_store.spend_logs()[0]} == {"orpha", "spill"}


def test_spilled_events_round_trip_and_a_torn_line_is_skipped(tmp_path: Path, spend_event: Events) -> None:
    spill = SpillFile(tmp_path / "spend.jsonl")
    event = spend_event(
        "r1",
        cost="0.0000000001",
        key_hash=KEY,
        input_tokens=3,
        fallback_used=True,
        started_at=datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        guardrails=[{"name": "pii", "action": "masked"}],
        metadata={"price": Decimal("1.5"), "at": datetime(2025, 1, 1, tzinfo=UTC)},
    )
    assert spill.append([event, spend_event("r2")]) == 2
    with open(spill.path, "a") as torn:
        torn.write(encode(spend_event("r3"))[:25])  # a crash mid-write
    claim = spill.claim()
    events = claim.read(10)
    restored = events[0]
    assert [e.request_id for e in events] == ["r1", "r2"] and claim.done
    assert restored.cost == Decimal("0.0000000001") and restored.started_at == event.started_at
    assert restored.metadata == {"price": "1.5", "at": "2025-01-01T00:00:00+00:00"}
    assert {**vars_of(restored), "metadata": None} == {**vars_of(event), "metadata": None}
    claim.release()
    assert list(tmp_path.glob("spend.jsonl*")) == [tmp_path / "spend.jsonl.lock"]


def vars_of(event: SpendEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in SpendEvent.__dataclass_fields__}


class StalledStore(RecordingStore):
    """A database that stops answering: `write_batch` blocks until `answer` is set (neither fails nor returns)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.answer = threading.Event()

    def write_batch(self, events: Sequence[SpendEvent]) -> int:
        self.batches.append(len(events))
        self.answer.wait(30)
        return Store.write_batch(self, events)


async def test_a_stalled_write_has_its_batch_and_the_queue_journaled_long_before_the_write_timeout(
    keyed_store: Store, spend_event: Events, tmp_path: Path
) -> None:
    """Issue 16: with the database hung, a kill -9 must lose at most ~`journal_after` of events, not the
    `write_timeout` (here 30 s) the writer waits for a stalled write."""
    stalled, spill = StalledStore(keyed_store), tmp_path / "spend.jsonl"
    writer = SpendWriter(stalled, batch_size=5, flush_interval=0.01, spill_path=spill, write_timeout=30,
                         journal_after=0.05, retry_max=0.05)
    await writer.start()
    events = many(spend_event, 12)
    try:
        for event in events[:8]:  # a batch of 5 is taken and stalls; 3 wait in the queue
            writer.submit(event)
        await eventually(lambda: writer.journaling, "journaling while the write is stalled", within=5)
        for event in events[8:]:
            writer.submit(event)
        await eventually(lambda: spill.exists() and len(spill.read_text().splitlines()) == 12,
                         "every event in the journal, the stalled batch included")
        assert stalled.batches == [5] and writer.written == 0
    finally:
        stalled.answer.set()
    await eventually(lambda: writer.written >= 12 and not spill.exists(), "the journal replayed")
    await writer.stop()
    assert stored_rows(keyed_store) == 12
    assert keyed_store.key_spend(KEY) == Decimal("0.12")


async def test_a_large_journal_is_replayed_a_chunk_at_a_time(
    keyed_store: Store, spend_event: Events, tmp_path: Path
) -> None:
    """Replaying holds at most a chunk (plus a batch) in memory, whatever the journal's size; stopping midway
    keeps the unread part in its file for the next start, and every event is stored once."""
    spill = tmp_path / "spend.jsonl"
    SpillFile(spill).append(many(spend_event, 100))
    slow = SlowStore(keyed_store)
    writer = SpendWriter(slow, batch_size=5, flush_interval=0.01, spill_path=spill, replay_chunk=10)
    deepest = 0

    def sampled() -> bool:
        nonlocal deepest
        deepest = max(deepest, writer.depth)
        return writer.written >= 30

    await writer.start()
    await eventually(sampled, "a third of the journal written")
    await writer.stop()
    assert deepest <= 15
    assert 30 <= stored_rows(keyed_store) < 100 and list(tmp_path.glob("spend.jsonl.*.ingesting"))
    writer = SpendWriter(slow, batch_size=50, flush_interval=0.01, spill_path=spill, replay_chunk=10)
    await writer.start()
    await eventually(lambda: stored_rows(keyed_store) == 100 and not writer.spill_bytes(), "the rest replayed")
    await writer.stop()
    assert keyed_store.key_spend(KEY) == Decimal("1.00")
