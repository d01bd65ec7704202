"""End-user and tag changes reach every process within `model_sync_interval`, as key changes do
(`test_key_sync.py`): block an end-user or change a tag on one replica and another replica, which had the
record cached for an hour, applies it. On SQLite and PostgreSQL; plus the log's migration and its ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from proxy.limits import EndUserRecords
from proxy.record_sync import RecordSync
from proxy.spend.db import downgrade, make_engine, migrate
from proxy.spend.gate import DatabaseGate
from proxy.spend.holders import TAG
from proxy.spend.key_changes import END_USER, KEY
from proxy.spend.key_changes import TAG as TAG_CHANGE
from proxy.spend.store import Store
from proxy.spend.tables import key_changes
from tests.serving import MASTER_KEY, admin, answered, wait_until
from tests.test_key_sync import BODY, INTERVAL, replicas  # noqa: F401 - `replicas` is a fixture

APPLIED = 30.0
"""How long a test waits for the other replica. Its cache TTL is an hour, so any change it applies within this
came through the sync; the bound itself (the interval plus one read deadline) is measured in docs/admin-api.md,
not asserted against a busy machine's clock."""


def rerank(url: str, *, user: str | None = None, tags: list[str] | None = None) -> int:
    body = {**BODY, **({"user": user} if user else {}), **({"metadata": {"tags": tags}} if tags else {})}
    return httpx.post(f"{url}/v2/rerank", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"},
                      timeout=10).status_code


def applied_within_the_bound(url: str, expected: int, **call: object) -> None:
    wait_until(lambda: rerank(url, **call) == expected, timeout=APPLIED)  # type: ignore[arg-type]


def test_an_end_user_blocked_on_one_replica_is_refused_by_another_and_unblocked_passes(replicas):
    one, two = replicas
    with admin(one) as client:
        answered(client.post("/customer/new", json={"user_id": "alice"}))
        assert rerank(two, user="alice") == 200 and rerank(two, user="bob") == 200  # both cached on two
        answered(client.post("/customer/block", json={"user_ids": ["alice"]}))
        assert rerank(one, user="alice") == 403  # the replica that made the change: at once
        applied_within_the_bound(two, 403, user="alice")
        assert rerank(two, user="bob") == 200  # evicted, not flushed
        answered(client.post("/customer/unblock", json={"user_ids": ["alice"]}))
        applied_within_the_bound(two, 200, user="alice")


def test_an_end_user_updated_or_deleted_on_one_replica_is_applied_by_another(replicas):
    one, two = replicas
    with admin(one) as client:
        assert rerank(two, user="carol") == 200  # never created: cached on two as unknown
        answered(client.post("/customer/block", json={"user_ids": ["carol"]}))  # creates her, blocked
        applied_within_the_bound(two, 403, user="carol")
        answered(client.post("/customer/update", json={"user_id": "carol", "blocked": False, "max_budget": 0}))
        wait_until(lambda: rerank(two, user="carol") not in (200, 403), timeout=APPLIED)  # over her zero budget
        answered(client.post("/customer/delete", json={"user_ids": ["carol"]}))
        applied_within_the_bound(two, 200, user="carol")


def test_a_tag_changed_on_one_replica_is_applied_by_another(replicas):
    one, two = replicas
    with admin(one) as client:
        assert rerank(two, tags=["team-x"]) == 200  # not a tag yet: cached on two as unknown
        answered(client.post("/tag/new", json={"name": "team-x", "models": ["another-model"]}))
        assert rerank(one, tags=["team-x"]) == 403
        applied_within_the_bound(two, 403, tags=["team-x"])
        answered(client.post("/tag/update", json={"name": "team-x", "models": [], "max_budget": 0}))
        wait_until(lambda: rerank(two, tags=["team-x"]) not in (200, 403), timeout=APPLIED)  # over its zero budget
        answered(client.post("/tag/update", json={"name": "team-x", "max_budget": 100}))
        applied_within_the_bound(two, 200, tags=["team-x"])
        answered(client.post("/tag/update", json={"name": "team-x", "models": ["another-model"]}))
        applied_within_the_bound(two, 403, tags=["team-x"])
        answered(client.post("/tag/delete", json={"name": "team-x"}))
        applied_within_the_bound(two, 200, tags=["team-x"])


# -- in process: the real store and gate; no server -----------------------------------------------------

async def test_a_poll_evicts_each_record_from_the_cache_of_its_kind(store: Store):
    gate = DatabaseGate(store, timeout=1.0)
    end_users = EndUserRecords(gate, ttl=3600)
    tags = EndUserRecords(gate, ttl=3600, kind="tag", fetch=lambda name: store.get_holder(TAG, name))
    sync = RecordSync(store, {END_USER: end_users.forget, TAG_CHANGE: tags.forget}, interval=3600, deadline=0.5)
    await sync.start()
    try:
        store.create_customer("alice")
        store.create_holder(TAG, "shared")
        assert await sync.poll() == 2  # their creation (either may have been cached as unknown)
        assert not (await end_users.get("alice")).blocked and (await tags.get("shared")).max_budget is None
        assert await end_users.get("shared") is None  # an end-user named like the tag: cached as unknown
        store.set_customers_blocked(["alice"], True)
        store.update_holder(TAG, "shared", max_budget=5)
        with store.engine.begin() as connection:  # a kind from a newer version: passed over, not an error
            connection.execute(key_changes.insert().values(kind="team", token="x", changed_at=datetime.now(UTC)))
        store.create_key("a" * 64)  # a key: no cache for it here
        assert await sync.poll() == 2
        assert (await end_users.get("alice")).blocked and (await tags.get("shared")).max_budget == 5
        store.create_customer("shared", blocked=True)  # evicted from the end-user cache, not the tag cache
        assert await sync.poll() == 1 and (await end_users.get("shared")).blocked
        assert await sync.poll() == 0
    finally:
        await sync.stop()
        await gate.close()


async def test_an_end_user_read_that_ran_across_an_eviction_answers_but_is_not_cached(store: Store):
    store.create_customer("alice")
    gate = DatabaseGate(store, timeout=1.0)
    records = EndUserRecords(gate, ttl=3600)
    started, before = records._evictions, store.get_customer("alice")  # the read starts ...
    store.set_customers_blocked(["alice"], True)
    records.forget("alice")  # ... the change is evicted while it runs ...
    assert records._remember("alice", started, before) is before  # ... its caller gets an answer,
    assert (await records.get("alice")).blocked  # but it was not cached: the next call re-reads
    await gate.close()


def test_pruning_keeps_the_newest_row_so_sqlite_never_hands_its_id_out_again(store: Store):
    store.create_customer("a")
    store.create_customer("b")
    last = store.last_change()
    assert store.prune_changes(datetime.now(UTC) + timedelta(hours=1)) == 1  # all are old; the newest stays
    store.create_customer("c")
    [(ident, kind, token)] = store.changes_after(last, 10)
    assert ident > last and (kind, token) == (END_USER, "c")


def test_migration_0010_keeps_logged_key_changes_and_downgrade_drops_the_other_kinds(fresh_db_url: str):
    engine = make_engine(fresh_db_url)
    try:
        migrate(engine, "0009")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as connection:
            for digest in ("a" * 64, "b" * 64):
                connection.execute(text("INSERT INTO key_changes (token, changed_at) VALUES (:t, :at)"),
                                   {"t": digest, "at": now})
        migrate(engine)
        store = Store(engine)
        assert store.changes_after(0, 10) == [(1, KEY, "a" * 64), (2, KEY, "b" * 64)]
        long_id = "customer-" + "x" * 200  # did not fit the 64 characters of a digest
        store.create_customer(long_id)
        store.create_holder(TAG, "t")
        assert [row[1:] for row in store.changes_after(2, 10)] == [(END_USER, long_id), (TAG_CHANGE, "t")]
        with engine.begin() as connection:  # a replica not yet upgraded logs without a kind: a key
            connection.execute(text("INSERT INTO key_changes (token, changed_at) VALUES (:t, :at)"),
                               {"t": "c" * 64, "at": now})
        assert store.changes_after(4, 10) == [(5, KEY, "c" * 64)]
        downgrade(engine, "0009")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, token FROM key_changes ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "a" * 64), (2, "b" * 64), (5, "c" * 64)]
        migrate(engine)
    finally:
        engine.dispose()
