"""Key changes reach every process within `model_sync_interval`: delete, block, rotate or update a key (or
block its team) on one replica and another replica, which had the key cached, refuses it. On SQLite and
PostgreSQL; a stalled database evicts nothing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from proxy.auth.caller import Authenticator
from proxy.auth.keys import hash_key
from proxy.errors import AuthenticationError, PermissionDeniedError, StoreUnavailableError
from proxy.record_sync import RecordSync
from proxy.spend.gate import DatabaseGate
from proxy.spend.holders import TEAM
from proxy.spend.key_changes import KEY
from proxy.spend.store import Store
from proxy.spend.tables import key_changes
from tests.conftest import POSTGRES_ENV, scratch_database
from tests.serving import admin, answered, config_for, running_proxy, wait_until
from tests.tcp_relay import TcpRelay

INTERVAL = 0.2
BODY = {"model": "local-bm25", "query": "capital of the United States",
        "documents": ["Washington is the capital of the United States.", "Paris is in France."]}


def rerank(url: str, key: str, model: str = "local-bm25") -> int:
    return httpx.post(f"{url}/v2/rerank", json={**BODY, "model": model},
                      headers={"authorization": f"Bearer {key}"}, timeout=10).status_code


@pytest.fixture
def replicas(store: Store, test_db_url: str) -> Iterator[tuple[str, str]]:
    """Two servers on one database; keys stay cached for an hour, so only the key sync can evict them."""
    config = config_for(None, test_db_url, general_settings={"model_sync_interval": INTERVAL,
                                                             "key_cache_ttl": 3600})
    with running_proxy(config) as one, running_proxy(config) as two:
        yield one.url, two.url


ACTIONS = {
    "delete": ("/key/delete", lambda key: {"keys": [key]}, 401),
    "block": ("/key/block", lambda key: {"key": key}, 403),
    "regenerate": ("/key/regenerate", lambda key: {"key": key}, 401),
    "update models": ("/key/update", lambda key: {"key": key, "models": ["another-model"]}, 401),
    "block its team": ("/team/block", lambda key: {"team_id": "crew"}, 403),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_key_changed_on_one_replica_is_refused_by_another_within_the_interval(replicas, action):
    one, two = replicas
    path, body, status = ACTIONS[action]
    with admin(one) as client:
        answered(client.post("/team/new", json={"team_id": "crew"}))
        key = answered(client.post("/key/generate", json={"team_id": "crew", "models": ["local-bm25"]}))["key"]
        other = answered(client.post("/key/generate", json={}))["key"]
        assert rerank(two, key) == 200 and rerank(two, other) == 200  # both now cached on two, for an hour
        answered(client.post(path, json=body(key)))
    refused = 403 if action == "update models" else status  # a model the key may no longer use
    assert rerank(one, key) in (status, refused)  # the replica that made the change: at once
    # the TTL is an hour: applied at all means applied by the sync (its bound is measured in the docs, not here)
    wait_until(lambda: rerank(two, key) in (status, refused), timeout=30)
    assert rerank(two, other) == 200  # evicted, not flushed: the untouched key is still served


def test_a_rotated_key_signs_in_with_its_new_secret_everywhere_and_the_old_one_nowhere(replicas):
    one, two = replicas
    with admin(one) as client:
        old = answered(client.post("/key/generate", json={}))["key"]
        assert rerank(two, old) == 200
        new = answered(client.post("/key/regenerate", json={"key": old}))["key"]
    wait_until(lambda: rerank(two, old) == 401, timeout=5)
    assert rerank(two, new) == 200 and rerank(one, new) == 200


# -- in process: the real store, authenticator and gate; no server --------------------------------------

async def cached(auth: Authenticator, key: str) -> None:
    await auth.authenticate(f"Bearer {key}")


def make(store: Store, **options) -> tuple[Authenticator, RecordSync]:
    auth = Authenticator(DatabaseGate(store, timeout=1.0), "sk-master", ttl=3600)
    return auth, RecordSync(store, {KEY: auth.forget}, interval=3600, deadline=0.5, **options)


async def test_a_poll_evicts_only_the_changed_keys_and_reads_in_batches(store: Store):
    for name in ("a", "b", "c"):
        store.create_key(hash_key(f"sk-{name}"), key_alias=name)
    auth, sync = make(store, batch=2)
    await sync.start()
    try:
        for name in ("a", "b", "c"):
            await cached(auth, f"sk-{name}")
        store.set_blocked(hash_key("sk-a"), True)
        store.delete_keys([hash_key("sk-b")])
        store.create_holder(TEAM, "t")  # a team with no keys logs nothing
        assert await sync.poll() == 2
        with pytest.raises(PermissionDeniedError):
            await cached(auth, "sk-a")
        with pytest.raises(AuthenticationError):
            await cached(auth, "sk-b")
        reads = auth._known.get(hash_key("sk-c"))
        assert reads is not None  # still cached
        for i in range(5):  # more changes than one batch
            store.update_key(hash_key("sk-c"), metadata={"n": i})
        assert await sync.poll() == 5 and await sync.poll() == 0
        assert auth._known.get(hash_key("sk-c")) is None
    finally:
        await sync.stop()


async def test_a_starting_process_begins_after_the_newest_change_and_old_rows_are_pruned(store: Store):
    store.create_key(hash_key("sk-a"))
    store.update_key(hash_key("sk-a"), metadata={"x": 1})
    auth, sync = make(store)
    await sync.start()
    try:
        assert sync.last_id == store.last_change() > 0 and await sync.poll() == 0
        with store.engine.begin() as connection:
            connection.execute(key_changes.update().values(changed_at=datetime.now(UTC) - timedelta(hours=2)))
        store.update_key(hash_key("sk-a"), metadata={"x": 2})
        sync._next_prune = 0  # the prune is due
        assert await sync.poll() == 1
        with store.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(key_changes)).scalar_one() == 1
    finally:
        await sync.stop()


async def test_a_read_that_ran_across_an_eviction_answers_but_is_not_cached(store: Store):
    """A key read that started before a change and returned after its eviction must not refill the cache
    with the row from before the change (it would then be served for the whole TTL)."""
    digest = hash_key("sk-a")
    store.create_key(digest)
    auth, _ = make(store)
    started = auth._evictions  # the read starts ...
    before = store.key_with_owners(digest)
    store.set_blocked(digest, True)
    auth.forget(digest)  # ... the change is evicted while it runs ...
    assert auth._remember(digest, started, before) is not None  # ... its caller gets an answer,
    assert auth._known.get(digest) is None  # but the cache stays empty: the next request re-reads
    with pytest.raises(PermissionDeniedError):
        await cached(auth, "sk-a")


@pytest.fixture
def relayed_postgres(tmp_path: Path) -> Iterator[tuple[TcpRelay, str]]:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV}")
    with scratch_database("postgres", tmp_path) as direct:
        parsed = make_url(direct)
        with TcpRelay(parsed.host or "127.0.0.1", parsed.port or 5432) as relay:
            yield relay, parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
            relay.thaw()


async def test_a_stalled_database_evicts_nothing_and_blocks_no_request(relayed_postgres):
    relay, url = relayed_postgres
    store = Store.connect(url)
    try:
        store.create_key(hash_key("sk-a"))
        auth, sync = make(store)
        await sync.start()
        await cached(auth, "sk-a")
        writer = Store.connect(url)  # the admin change, made before the stall on another connection
        writer.set_blocked(hash_key("sk-a"), True)
        writer.close()
        relay.freeze()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await sync.poll()
        assert time.monotonic() - started < 1.0  # the deadline, not the hang
        with pytest.raises(StoreUnavailableError):
            await sync.poll()  # the hung read still holds its thread: refused at once, no second thread
        await cached(auth, "sk-a")  # still served from the cache, not flushed
        relay.thaw()
        await wait_for_poll(sync)
        with pytest.raises(PermissionDeniedError):
            await cached(auth, "sk-a")
        await sync.stop()
    finally:
        relay.thaw()
        store.close()


async def wait_for_poll(sync: RecordSync) -> None:
    for _ in range(200):
        try:
            if await sync.poll():
                return
        except StoreUnavailableError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the poll never worked again")
