"""Request-path reads when the database stalls: deadlines, stale keys, fast refusals, unknown-key floods.

The store here is a stand-in for a database that can be frozen (its reads block until thawed), behind the real
`DatabaseGate`, `Authenticator` and `EndUserRecords`; clocks are injected, never slept on.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from proxy.api.store_access import in_thread
from proxy.auth.caller import UNVERIFIED, Authenticator
from proxy.auth.keys import hash_key
from proxy.errors import AuthenticationError, PermissionDeniedError, StoreUnavailableError
from proxy.limits.end_users import EndUserRecords
from proxy.spend.gate import DatabaseGate, Deadline
from proxy.ttl_cache import TtlCache

MASTER = "sk-master"


@dataclass
class Record:
    token: str = "digest"
    key_alias: str = "k"
    user_id: str | None = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool = False
    expires: Any = None


class FreezableStore:
    """Answers from dicts; `frozen` makes every read block until thawed, as a hung database does."""

    def __init__(self) -> None:
        self.keys: dict[str, Record] = {}
        self.customers: dict[str, Any] = {}
        self.reads = 0
        self._thawed = threading.Event()
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def key_with_owners(self, digest: str) -> tuple[Record, None, None] | None:
        self.reads += 1
        self._thawed.wait(30)
        record = self.keys.get(digest)
        return None if record is None else (record, None, None)

    def get_customer(self, user_id: str) -> Any:
        self.reads += 1
        self._thawed.wait(30)
        return self.customers.get(user_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store():
    store = FreezableStore()
    yield store
    store.thaw()


@pytest.fixture
def clock():
    return Clock()


def make_auth(store, clock, **options):
    gate = DatabaseGate(store, timeout=0.05, pause=1.0, threads=2, clock=clock)
    return gate, Authenticator(gate, MASTER, ttl=30, clock=clock, **options)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_ttl_cache_evicts_the_least_recently_used_entry_and_reports_staleness(clock):
    cache: TtlCache[str, int] = TtlCache(10, 2, max_stale=5, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == (1, True)  # "a" used: "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == (1, True)
    clock.now += 12
    assert cache.get("a") == (1, False)  # stale, still within max_stale
    clock.now += 4
    assert cache.get("a") is None


async def test_a_known_key_is_served_stale_while_the_database_hangs_and_refreshed_after(store, clock):
    gate, auth = make_auth(store, clock)
    store.keys[hash_key("sk-good")] = Record(key_alias="good")
    assert (await auth.authenticate(bearer("sk-good"))).key_alias == "good"
    store.freeze()
    clock.now += 31  # past the TTL
    assert (await auth.authenticate(bearer("sk-good"))).key_alias == "good"  # waited one deadline, then stale
    assert not gate.up
    reads = store.reads
    for _ in range(50):  # the gate is down: no new read starts, every call is served from the cache at once
        assert (await auth.authenticate(bearer("sk-good"))).key_alias == "good"
    assert store.reads == reads
    store.keys[hash_key("sk-good")] = Record(key_alias="good", blocked=True)
    store.thaw()
    await wait_for(lambda: gate.up)  # the hung read answered late: it refilled the cache
    with pytest.raises(PermissionDeniedError):
        await auth.authenticate(bearer("sk-good"))


async def test_staleness_is_bounded(store, clock):
    gate, auth = make_auth(store, clock, max_stale=60)
    store.keys[hash_key("sk-good")] = Record()
    await auth.authenticate(bearer("sk-good"))
    store.freeze()
    clock.now += 30 + 59
    await auth.authenticate(bearer("sk-good"))
    clock.now += 2  # 61 s past the TTL
    with pytest.raises(StoreUnavailableError):
        await auth.authenticate(bearer("sk-good"))


async def test_an_unknown_key_gets_a_fast_503_while_the_database_hangs(store, clock):
    gate, auth = make_auth(store, clock)
    store.freeze()
    with pytest.raises(StoreUnavailableError) as refused:
        await auth.authenticate(bearer("sk-never-seen"))
    assert refused.value.retry_after
    reads = store.reads
    for n in range(20):  # the gate is down: refused without starting a read, so no thread piles up
        with pytest.raises(StoreUnavailableError):
            await auth.authenticate(bearer(f"sk-other-{n}"))
    assert store.reads == reads


async def test_allow_requests_on_db_unavailable_lets_an_unverifiable_key_through_restricted(store, clock):
    gate, auth = make_auth(store, clock, allow_unverified=True)
    store.freeze()
    caller = await auth.authenticate(bearer("sk-cannot-check"))
    assert caller is UNVERIFIED and not caller.is_admin and caller.record is None
    store.thaw()
    await wait_for(lambda: gate.up)
    clock.now += 2
    with pytest.raises(AuthenticationError):  # a database that answers still refuses unknown keys
        await auth.authenticate(bearer("sk-cannot-check"))


async def test_an_unknown_key_flood_costs_one_read_each_and_never_evicts_a_key_in_use(store, clock):
    # the figure: 200,000 made-up keys against the default cache sizes (100,000 known, 10,000 unknown)
    gate = DatabaseGate(store, timeout=10, pause=1.0, threads=2, clock=clock)  # (a busy machine: no timeouts)
    auth = Authenticator(gate, MASTER, ttl=30, clock=clock)
    store.keys[hash_key("sk-good")] = Record(key_alias="good")
    await auth.authenticate(bearer("sk-good"))
    flood = 200_000
    for n in range(flood):
        if n % 10_000 == 0:
            clock.now += 1  # 20 s for the whole flood: the valid key stays within its TTL
        with pytest.raises(AuthenticationError):
            await auth.authenticate(bearer(f"sk-flood-{n}"))
    assert store.reads == 1 + flood
    for n in range(flood - 10, flood):  # recent unknown keys are remembered: no second read
        with pytest.raises(AuthenticationError):
            await auth.authenticate(bearer(f"sk-flood-{n}"))
    assert store.reads == 1 + flood
    store.freeze()  # the valid key survived the flood: served with the database hung, no read
    assert (await auth.authenticate(bearer("sk-good"))).key_alias == "good"
    assert store.reads == 1 + flood


async def test_a_blocked_end_user_stays_blocked_through_an_outage(store, clock):
    gate = DatabaseGate(store, timeout=0.05, pause=1.0, threads=2, clock=clock)
    records = EndUserRecords(gate, ttl=30, clock=clock)
    store.customers["mallory"] = Record(blocked=True)
    assert (await records.get("mallory")).blocked
    store.freeze()
    for step in (31, 600, 3600):  # far past the TTL, the last known block still applies
        clock.now += step
        assert (await records.get("mallory")).blocked
    assert await records.get("someone-new") is None  # never seen: no end-user limits invented


async def wait_for(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_repeating_poll_holds_one_thread_while_the_database_hangs():
    """The model and key syncs poll every few seconds: a hung call must not start one more thread per poll
    (the default executor, which the spend writer shares, would fill up)."""
    answer, started = threading.Event(), []

    def hung() -> int:
        started.append(1)
        answer.wait(10)
        return 1

    poll = Deadline(0.05, serial=True)
    for _ in range(5):
        with pytest.raises(StoreUnavailableError):
            await poll(hung)
    assert len(started) == 1
    answer.set()
    async with asyncio.timeout(10):  # once the hung call has returned, polls run again
        while True:
            try:
                assert await poll(int) == 0
                break
            except StoreUnavailableError:
                await asyncio.sleep(0.01)
    with pytest.raises(StoreUnavailableError):  # a driver error is the database being unavailable
        await poll(lambda: 1 / 0)
    assert await poll(int, "7") == 7


async def test_a_burst_of_new_keys_waits_for_a_gate_thread_and_only_a_full_queue_is_refused(store):
    """Sixteen new keys at once on a 2-thread gate are all read (a busy database is not a down one); with the
    threads and their queue all held by a hung database, the next read is refused at once."""
    for n in range(16):
        store.keys[hash_key(f"sk-burst-{n}")] = Record(key_alias=f"burst-{n}")
    gate = DatabaseGate(store, timeout=10, threads=2, queued=8)
    auth = Authenticator(gate, MASTER, ttl=30)
    callers = await asyncio.gather(*(auth.authenticate(bearer(f"sk-burst-{n}")) for n in range(16)))
    assert sorted(c.key_alias for c in callers) == sorted(f"burst-{n}" for n in range(16))
    store.freeze()
    held = [asyncio.ensure_future(auth.authenticate(bearer(f"sk-held-{n}"))) for n in range(18)]  # 2 x (1 + 8)
    await asyncio.sleep(0)
    assert not gate.up
    with pytest.raises(StoreUnavailableError):
        await auth.authenticate(bearer("sk-one-too-many"))
    store.thaw()
    await asyncio.gather(*held, return_exceptions=True)


async def test_an_admin_store_call_waits_at_most_its_deadline_then_answers_503():
    """Admin and UI pages reach the store through `in_thread`: a hung database costs them a bounded wait."""
    answer = threading.Event()
    try:
        with pytest.raises(StoreUnavailableError, match="did not answer within 0.05s"):
            await in_thread(answer.wait, 10, deadline=0.05)
    finally:
        answer.set()
    assert await in_thread(int, "7") == 7
