"""`Batches`: when a batch is due, and how a consumer is woken, with an injected clock (no sleeping)."""

from __future__ import annotations

import asyncio
import random

from proxy.batching import Batches, backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_is_due_when_full_or_when_its_oldest_item_has_waited_the_interval() -> None:
    clock = Clock()
    batches: Batches[int] = Batches(3, 3600, clock=clock)
    waiting = asyncio.create_task(batches.next_batch())
    batches.append(1)
    batches.append(2)
    await settle()
    assert not waiting.done()  # two of three, an hour to go
    batches.append(3)
    assert await asyncio.wait_for(waiting, 5) == [1, 2, 3]

    batches.append(4)
    clock.now += 3599
    batches.nudge()
    assert await batches.next_batch() == []  # nudged before it was due: the consumer looks, finds nothing
    clock.now += 1
    batches.nudge()
    assert await batches.next_batch() == [4]


async def test_items_put_back_are_due_at_once_and_a_closing_queue_drains_without_waiting() -> None:
    batches: Batches[int] = Batches(2, 3600, clock=Clock())
    batches.append(3)
    batches.put_front([1, 2])
    assert await batches.next_batch() == [1, 2]
    batches.close()
    assert await batches.next_batch() == [3]
    assert await batches.next_batch() == []


async def test_pause_ends_early_when_nudged() -> None:
    batches: Batches[int] = Batches(2, 1)
    pausing = asyncio.create_task(batches.pause(3600))
    await settle()
    batches.append(1)  # new items do not end a pause
    await settle()
    assert not pausing.done()
    batches.nudge()
    await asyncio.wait_for(pausing, 5)


def test_backoff_doubles_up_to_its_cap_and_jitters_down_by_at_most_half() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (10, 1.0)]:
        delay = backoff(attempt, 0.1, 1.0, rng)
        assert ceiling / 2 <= delay <= ceiling
