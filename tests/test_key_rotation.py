"""`/key/regenerate`: a new secret for the same key id (budgets and spend history kept), the old secret
accepted only within the grace period; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import inspect, text

from proxy.auth.keys import hash_key
from proxy.spend.db import downgrade, make_engine, migrate
from proxy.spend.store import Store
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import answered, wait_until

PAID = "rerank-english-v3.0"


def rerank(admin_server: str, key: str) -> httpx.Response:
    return httpx.post(f"{admin_server}/v2/rerank", headers={"authorization": f"Bearer {key}"},
                      json={"model": PAID, "query": CAPITAL_QUERY, "documents": CAPITALS}, timeout=30)


def test_a_regenerated_key_keeps_its_id_budget_and_history_and_the_old_secret_works_in_the_grace_period(
        admin_server, admin_api):
    old = answered(admin_api.post("/key/generate", json={"key_alias": "rotating", "max_budget": 1}))
    assert rerank(admin_server, old["key"]).status_code == 200
    new = answered(admin_api.post("/key/regenerate", json={"key": old["key"], "grace_period": "1h"}))
    assert new["key"] != old["key"] and new["token"] != old["token"] and new["key"].startswith("sk-")
    assert new["key_id"] == old["key_id"] == new["token_id"] and new["key_alias"] == "rotating"
    assert new["max_budget"] == 1 and new["previous_token_expires"] is not None
    assert rerank(admin_server, new["key"]).status_code == 200
    assert rerank(admin_server, old["key"]).status_code == 200  # within the grace period
    info = answered(admin_api.get("/key/info", params={"key": new["key"]}))["info"]
    assert info["key_id"] == old["key_id"]
    rows = wait_until(lambda: (r := answered(admin_api.get("/spend/logs", params={"api_key": new["key"]}))) and
                      len(r) == 3 and r)
    assert {r["key_id"] for r in rows} == {old["key_id"]}
    info_of = {"key": new["key"]}
    assert wait_until(lambda: answered(admin_api.get("/key/info", params=info_of))["info"]["spend"] >= 0.006)
    rotated = {"object_id": old["key_id"], "action": "rotated"}
    entry = answered(admin_api.get("/audit/logs", params=rotated))["audit_logs"]
    assert len(entry) == 1 and old["key"] not in str(entry) and new["key"] not in str(entry)


def test_without_a_grace_period_the_old_secret_stops_at_once_and_the_path_form_works(admin_server, admin_api):
    old = answered(admin_api.post("/key/generate", json={}))
    assert rerank(admin_server, old["key"]).status_code == 200
    new = answered(admin_api.post(f"/key/{old['key']}/regenerate"))
    assert rerank(admin_server, old["key"]).status_code == 401
    assert rerank(admin_server, new["key"]).status_code == 200
    assert admin_api.post("/key/regenerate", json={"key": "sk-unknown"}).status_code == 404
    assert admin_api.post("/key/regenerate", json={}).status_code == 400
    assert admin_api.post("/key/regenerate", json={"key": new["key"], "new_key": "nope"}).status_code == 422
    chosen = answered(admin_api.post("/key/regenerate", json={"key": new["key"], "new_key": "sk-chosen-secret-123"}))
    assert chosen["key"] == "sk-chosen-secret-123" and rerank(admin_server, "sk-chosen-secret-123").status_code == 200


def test_the_old_secret_is_refused_once_its_grace_period_has_passed(store: Store):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old, new = hash_key("sk-old"), hash_key("sk-new")
    created = store.create_key(old, now=now)
    rotated = store.rotate_key(old, new, grace_until=now + timedelta(hours=1), now=now)
    assert rotated is not None and rotated.key_id == created.key_id and rotated.previous_token == old
    assert store.key_with_owners(old, now + timedelta(minutes=59))[0].token == new
    assert store.key_with_owners(old, now + timedelta(hours=1)) is None
    assert store.key_with_owners(new, now + timedelta(days=9))[0].key_id == created.key_id
    store.rotate_key(new, hash_key("sk-third"), now=now)  # no grace: the previous secret is forgotten
    assert store.key_with_owners(new, now) is None


def logged(store: Store, digest: str, key_id: str | None) -> set[str]:
    rows, total = store.spend_logs(api_key_hash=digest, key_id=key_id)
    assert total == len(rows)
    return {row.request_id for row in rows}


def test_a_keys_logs_are_found_under_every_secret_it_has_had_but_not_another_keys_rows_under_them(
        store: Store, spend_event):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first, second, third = hash_key("sk-1"), hash_key("sk-2"), hash_key("sk-3")
    key = store.create_key(first, now=now)
    store.rotate_key(first, second, now=now)
    store.rotate_key(second, third, grace_until=now + timedelta(hours=1), now=now)
    other = store.create_key(first, now=now)  # the first secret, rotated away, reused by another key
    store.write_batch([spend_event("one", key_hash=first, key_id=key.key_id),
                       spend_event("two", key_hash=second, key_id=key.key_id),
                       spend_event("three", key_hash=third, key_id=key.key_id),
                       spend_event("before-ids", key_hash=third),  # logged before keys had a key_id
                       spend_event("old-no-id", key_hash=second),  # not found before the change either
                       spend_event("other", key_hash=first, key_id=other.key_id)])
    assert logged(store, third, key.key_id) == {"one", "two", "three", "before-ids"}
    assert logged(store, first, other.key_id) == {"other", "one"}  # its digest's rows, whoever logged them (as before)
    assert logged(store, hash_key("sk-gone"), None) == set()  # a deleted or unknown key: its digest only


def test_migration_0011_lists_the_digests_of_keys_and_logged_rows_and_drops_the_key_id_index(
        fresh_db_url: str, spend_event):
    engine = make_engine(fresh_db_url)
    try:
        migrate(engine, "0010")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO verification_tokens (token, previous_token, key_id, models, metadata, created_at, "
                "updated_at) VALUES (:t, :p, 'k1', '[]', '{}', :at, :at)"), {"t": "c" * 64, "p": "b" * 64, "at": now})
        Store(engine).write_batch([spend_event("r1", key_hash="a" * 64, key_id="k1"),
                                   spend_event("r2", key_hash="b" * 64, key_id="k1"),
                                   spend_event("r3", key_hash="d" * 64, key_id="k2"),
                                   spend_event("r4", key_hash="e" * 64)])
        migrate(engine)
        with engine.connect() as connection:
            pairs = set(connection.execute(text("SELECT token, key_id FROM key_digests")).all())
        assert pairs == {("a" * 64, "k1"), ("b" * 64, "k1"), ("c" * 64, "k1"), ("d" * 64, "k2")}
        assert "ix_spend_logs_key_id" not in {ix["name"] for ix in inspect(engine).get_indexes("spend_logs")}
        store = Store(engine)
        assert logged(store, "c" * 64, "k1") == {"r1", "r2"}
        store.rotate_key("c" * 64, "f" * 64, now=now)
        store.write_batch([spend_event("r5", key_hash="f" * 64, key_id="k1")])
        assert logged(store, "f" * 64, "k1") == {"r1", "r2", "r5"}
        downgrade(engine, "0010")
        assert "ix_spend_logs_key_id" in {ix["name"] for ix in inspect(engine).get_indexes("spend_logs")}
        assert "key_digests" not in inspect(engine).get_table_names()
        migrate(engine)
    finally:
        engine.dispose()
