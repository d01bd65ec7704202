"""`Store` on SQLite and PostgreSQL: keys, end users, spend totals, idempotent batches, logs, budget resets."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from proxy.spend import ledger, tables
from proxy.spend.events import SpendEvent
from proxy.spend.store import AlreadyExistsError, KeyRecord, Store

PLAIN_KEY = "sk-rp-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e"
DIGEST = hashlib.sha256(PLAIN_KEY.encode()).hexdigest()
T0 = datetime(2025, 1, 1, tzinfo=UTC)

Events = Callable[..., SpendEvent]


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def dump_database(store: Store) -> str:
    """Every value of every row of every table, as one string."""
    with store.engine.connect() as connection:
        return repr([connection.execute(select(table)).all() for table in tables.metadata.sorted_tables])


# keys ---------------------------------------------------------------------------------------------


def test_a_key_round_trips_with_its_fields(store: Store) -> None:
    created = store.create_key(
        DIGEST,
        key_alias="ci",
        key_name="sk-...9c2e",
        user_id="alice",
        models=["rerank-english"],
        max_budget=Decimal("12.5"),
        rpm_limit=60,
        metadata={"team": "search"},
        guardrails=["pii"],
        model_rpm_limit={"rerank-english": 10},
        expires=T0 + timedelta(days=30),
    )
    assert isinstance(created, KeyRecord)
    assert store.get_key(DIGEST) == created
    assert store.get_key_by_alias("ci") == created
    assert created.spend == Decimal(0) and created.blocked is False
    assert created.models == ["rerank-english"] and created.metadata == {"team": "search"}
    assert created.max_budget == Decimal("12.5")
    assert created.expires == T0 + timedelta(days=30) and created.expires.tzinfo is not None
    assert created.created_at.utcoffset() == timedelta(0)


def test_missing_keys_are_none(store: Store) -> None:
    assert store.get_key(digest("nope")) is None
    assert store.get_key_by_alias("nope") is None
    assert store.update_key(digest("nope"), rpm_limit=1) is None
    assert store.set_blocked(digest("nope"), True) is None
    assert store.key_spend(digest("nope")) is None


def test_only_the_digest_of_a_key_reaches_the_database(store: Store, spend_event: Events) -> None:
    store.create_key(DIGEST, key_name=f"sk-...{PLAIN_KEY[-4:]}", key_alias="prod")
    store.write_batch([spend_event("r1", key_hash=DIGEST, key_alias="prod")])
    everything = dump_database(store)
    assert DIGEST in everything
    assert PLAIN_KEY not in everything and PLAIN_KEY[:-4] not in everything


def test_a_plain_key_is_refused_as_a_token(store: Store) -> None:
    for not_a_digest in (PLAIN_KEY, DIGEST.upper(), DIGEST[:-1]):
        with pytest.raises(ValueError, match="SHA-256"):
            store.create_key(not_a_digest)
    assert store.list_keys() == ([], 0)


def test_duplicate_digest_or_alias_is_refused(store: Store) -> None:
    store.create_key(DIGEST, key_alias="taken")
    with pytest.raises(AlreadyExistsError):
        store.create_key(DIGEST)
    with pytest.raises(AlreadyExistsError):
        store.create_key(digest("other"), key_alias="taken")
    other = store.create_key(digest("other"))
    with pytest.raises(AlreadyExistsError):
        store.update_key(other.token, key_alias="taken")


def test_unknown_fields_and_bad_durations_are_refused(store: Store) -> None:
    with pytest.raises(TypeError, match="colour"):
        store.create_key(DIGEST, colour="blue")
    with pytest.raises(ValueError, match="duration"):
        store.create_key(DIGEST, budget_duration="fortnight")
    with pytest.raises(TypeError, match="token"):
        store.create_key(DIGEST, token=digest("x"))
    with pytest.raises(ValueError, match="naive"):
        store.create_key(DIGEST, expires=datetime(2030, 1, 1))
    assert store.list_keys() == ([], 0)


def test_update_and_block_a_key(store: Store) -> None:
    created = store.create_key(DIGEST, now=T0)
    later = T0 + timedelta(hours=1)
    updated = store.update_key(DIGEST, now=later, max_budget=Decimal(5), models=["a", "b"], key_alias="new")
    assert updated is not None
    assert (updated.max_budget, updated.models, updated.key_alias) == (Decimal(5), ["a", "b"], "new")
    assert updated.created_at == created.created_at and updated.updated_at == later
    blocked = store.set_blocked(DIGEST, True)
    assert blocked is not None and blocked.blocked is True
    assert store.get_key(DIGEST) == blocked
    assert store.set_blocked(DIGEST, False).blocked is False


def test_a_budget_duration_starts_a_budget_period(store: Store) -> None:
    key = store.create_key(DIGEST, budget_duration="30d", now=T0)
    assert key.budget_reset_at == T0 + timedelta(days=30)
    later = T0 + timedelta(days=3)
    assert store.update_key(DIGEST, budget_duration="1h", now=later).budget_reset_at == later + timedelta(
        hours=1
    )
    assert store.update_key(DIGEST, budget_duration=None).budget_reset_at is None


def test_list_keys_filters_and_paginates(store: Store) -> None:
    for index in range(7):
        store.create_key(
            digest(f"k{index}"),
            key_alias=f"alias-{index}",
            user_id="alice" if index % 2 == 0 else "bob",
            now=T0 + timedelta(minutes=index),
        )
    page, total = store.list_keys(user_id="alice", page=1, size=3)
    assert total == 4 and [key.key_alias for key in page] == ["alias-0", "alias-2", "alias-4"]
    page, total = store.list_keys(user_id="alice", page=2, size=3)
    assert total == 4 and [key.key_alias for key in page] == ["alias-6"]
    assert store.list_keys(user_id="alice", page=3, size=3) == ([], 4)
    page, total = store.list_keys(key_alias="alias-5")
    assert total == 1 and page[0].user_id == "bob"
    assert store.list_keys()[1] == 7
    with pytest.raises(ValueError):
        store.list_keys(page=0)


def test_delete_keys_counts_what_existed_and_keeps_their_logs(store: Store, spend_event: Events) -> None:
    store.create_key(digest("a"))
    store.create_key(digest("b"))
    store.write_batch([spend_event("r1", key_hash=digest("a"))])
    assert store.delete_keys([digest("a"), digest("a"), digest("missing")]) == 1
    assert store.get_key(digest("a")) is None and store.get_key(digest("b")) is not None
    assert store.spend_logs(api_key_hash=digest("a"))[1] == 1
    assert store.delete_keys([]) == 0


# end users ----------------------------------------------------------------------------------------


def test_customer_crud(store: Store) -> None:
    created = store.create_customer(
        "acme", alias="Acme Inc", max_budget=Decimal(100), budget_duration="1mo", now=T0
    )
    assert created.spend == Decimal(0) and created.budget_reset_at == datetime(2025, 2, 1, tzinfo=UTC)
    assert store.get_customer("acme") == created
    with pytest.raises(AlreadyExistsError):
        store.create_customer("acme")
    updated = store.update_customer("acme", blocked=True, rpm_limit=5)
    assert updated is not None and updated.blocked and updated.rpm_limit == 5
    assert store.update_customer("ghost", blocked=True) is None
    store.create_customer("zeta")
    store.create_customer("beta")
    assert [c.user_id for c in store.list_customers(page=1, size=2)[0]] == ["acme", "beta"]
    assert [c.user_id for c in store.list_customers(page=2, size=2)[0]] == ["zeta"]
    assert store.list_customers()[1] == 3
    assert store.delete_customers(["acme", "ghost"]) == 1
    assert store.get_customer("acme") is None


# spend --------------------------------------------------------------------------------------------


def test_write_batch_adds_costs_to_keys_end_users_and_the_proxy(store: Store, spend_event: Events) -> None:
    a, b = digest("a"), digest("b")
    store.create_key(a)
    store.create_key(b)
    store.create_customer("known", alias="Known")
    batch = [
        spend_event("r1", key_hash=a, end_user="known", cost="0.0010000001"),
        spend_event("r2", key_hash=a, end_user="new-user", cost="0.25"),
        spend_event("r3", key_hash=b, end_user="known", cost="1.5"),
        spend_event("r4", key_hash=b, cost="0", status=502, error_class="UpstreamUnavailableError"),
        spend_event("r5", cost="2"),  # e.g. an SDK-side event without a key
    ]
    assert store.write_batch(batch) == 5
    assert store.key_spend(a) == Decimal("0.2510000001")
    assert store.key_spend(b) == Decimal("1.5")
    assert store.end_user_spend("known") == Decimal("1.5010000001")
    assert store.end_user_spend("new-user") == Decimal("0.25")
    assert store.get_customer("known").alias == "Known"  # the upsert keeps existing fields
    assert store.get_customer("new-user").metadata == {}  # created on first sight
    assert store.get_proxy_spend().spend == Decimal("3.7510000001")
    assert store.end_user_spend("nobody") is None


def test_a_retried_batch_is_not_counted_twice(store: Store, spend_event: Events) -> None:
    key = digest("a")
    store.create_key(key)
    batch = [spend_event(f"r{i}", key_hash=key, end_user="u", cost="0.1") for i in range(4)]
    assert store.write_batch(batch) == 4
    assert store.write_batch(batch) == 0
    overlapping = batch[2:] + [spend_event("r4", key_hash=key, end_user="u", cost="0.1")]
    assert store.write_batch(overlapping) == 1
    assert store.write_batch([batch[0], batch[0]]) == 0
    assert store.write_batch([]) == 0
    assert store.key_spend(key) == Decimal("0.5")
    assert store.end_user_spend("u") == Decimal("0.5")
    assert store.get_proxy_spend().spend == Decimal("0.5")
    assert store.spend_logs()[1] == 5


def test_duplicates_inside_one_batch_count_once(store: Store, spend_event: Events) -> None:
    key = digest("a")
    store.create_key(key)
    assert store.write_batch([spend_event("same", key_hash=key, cost="1")] * 3) == 1
    assert store.key_spend(key) == Decimal(1)


def test_a_large_batch_is_written_whole(store: Store, spend_event: Events) -> None:
    key = digest("a")
    store.create_key(key)
    events = [spend_event(f"r{i}", key_hash=key, end_user=f"u{i % 7}", cost="0.001") for i in range(1_200)]
    assert store.write_batch(events) == 1_200
    assert store.key_spend(key) == Decimal("1.2")
    assert store.list_customers()[1] == 7
    rows, total = store.spend_logs(size=2_000)
    assert total == 1_200 and {(row.request_id, row.end_user) for row in rows} == {
        (event.request_id, event.end_user) for event in events}


def test_a_batch_mixing_int_and_float_measures_is_written(store: Store, spend_event: Events) -> None:
    # psycopg refuses a list mixing int and float as one array; the local model reports search_units 0
    events = [spend_event("int", latency_ms=7, search_units=0), spend_event("float", latency_ms=2.5),
              spend_event("whole", latency_ms=3, search_units=2)]
    assert store.write_batch(events) == 3
    rows, _ = store.spend_logs()
    assert sorted((r.request_id, r.latency_ms, r.search_units) for r in rows) == [
        ("float", 2.5, 1.0), ("int", 7.0, 0.0), ("whole", 3.0, 2.0)]


def test_spend_log_rows_keep_every_event_field(store: Store, spend_event: Events) -> None:
    event = spend_event(
        "r1",
        key_hash=digest("a"),
        key_alias="ci",
        user_id="alice",
        end_user="u",
        input_tokens=120,
        total_tokens=130,
        fallback_used=True,
        cost="0.0123456789",
        started_at=datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        guardrails=[{"name": "pii", "action": "masked"}],
        metadata={"tag": "x"},
    )
    store.write_batch([event])
    (row,), total = store.spend_logs()
    assert total == 1
    for name in SpendEvent.__dataclass_fields__:
        assert getattr(row, name) == getattr(event, name), name


def test_spend_logs_filter_and_paginate_newest_first(store: Store, spend_event: Events) -> None:
    a, b = digest("a"), digest("b")
    events = [
        spend_event(
            f"r{i:02d}",
            key_hash=a if i % 2 else b,
            end_user="u1" if i < 6 else "u2",
            model_alias="m1" if i % 3 else "m2",
            started_at=T0 + timedelta(minutes=i),
        )
        for i in range(10)
    ]
    store.write_batch(events)
    rows, total = store.spend_logs(page=1, size=4)
    assert total == 10 and [r.request_id for r in rows] == ["r09", "r08", "r07", "r06"]
    rows, total = store.spend_logs(page=3, size=4)
    assert [r.request_id for r in rows] == ["r01", "r00"]
    assert {r.request_id for r in store.spend_logs(api_key_hash=a)[0]} == {"r01", "r03", "r05", "r07", "r09"}
    assert store.spend_logs(end_user="u2")[1] == 4
    assert {r.request_id for r in store.spend_logs(model="m2")[0]} == {"r00", "r03", "r06", "r09"}
    rows, _ = store.spend_logs(start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5))
    assert [r.request_id for r in rows] == ["r04", "r03", "r02"]
    rows, total = store.spend_logs(api_key_hash=a, end_user="u1", model="m1", start=T0 + timedelta(minutes=2))
    assert total == 1 and [r.request_id for r in rows] == ["r05"]


def test_spend_logs_accept_any_timezone_for_the_range(store: Store, spend_event: Events) -> None:
    store.write_batch([spend_event("r1", started_at=datetime(2025, 1, 1, 12, tzinfo=UTC))])
    plus_two = timezone(timedelta(hours=2))
    assert store.spend_logs(start=datetime(2025, 1, 1, 13, 59, tzinfo=plus_two))[1] == 1
    assert store.spend_logs(start=datetime(2025, 1, 1, 14, 1, tzinfo=plus_two))[1] == 0
    with pytest.raises(ValueError, match="naive"):
        store.spend_logs(start=datetime(2025, 1, 1))


# budget resets ------------------------------------------------------------------------------------


def test_reset_budgets_zeroes_what_is_due_and_moves_the_reset_forward(
    store: Store, spend_event: Events
) -> None:
    due, not_due, no_budget = digest("due"), digest("not-due"), digest("none")
    store.create_key(due, budget_duration="1d", now=T0)
    store.create_key(not_due, budget_duration="30d", now=T0)
    store.create_key(no_budget)
    store.create_customer("cust", budget_duration="1h", now=T0)
    store.set_proxy_budget(max_budget=Decimal(1000), budget_duration="1mo", now=T0)
    store.write_batch(
        [spend_event(f"r-{k[:4]}", key_hash=k, end_user="cust", cost="1") for k in (due, not_due, no_budget)]
    )

    now = T0 + timedelta(days=3, hours=5)
    assert store.reset_budgets(now) == {"keys": 1, "end_users": 1, "proxy": 0, "teams": 0, "users": 0, "tags": 0}
    assert store.key_spend(due) == 0 and store.get_key(due).budget_reset_at == T0 + timedelta(days=4)
    assert store.key_spend(not_due) == 1 and store.key_spend(no_budget) == 1
    assert store.get_customer("cust").budget_reset_at == T0 + timedelta(days=3, hours=6)
    assert store.end_user_spend("cust") == 0
    assert store.get_proxy_spend().spend == 3
    assert store.reset_budgets(now) == {"keys": 0, "end_users": 0, "proxy": 0, "teams": 0, "users": 0, "tags": 0}

    proxy = store.reset_budgets(datetime(2025, 2, 1, tzinfo=UTC))
    assert proxy["proxy"] == 1
    record = store.get_proxy_spend()
    assert record.spend == 0 and record.budget_reset_at == datetime(2025, 3, 1, tzinfo=UTC)


def test_a_reset_without_duration_clears_the_reset_time(store: Store) -> None:
    store.create_key(DIGEST, spend=Decimal(3), budget_reset_at=T0)
    assert store.reset_budgets(T0)["keys"] == 1
    key = store.get_key(DIGEST)
    assert key.spend == 0 and key.budget_reset_at is None


def test_the_default_batch_interval_suits_the_backend(store: Store) -> None:
    """SQLite writes in the worker's process: short batches; PostgreSQL's row work is elsewhere: longer ones."""
    assert store.flush_interval == {"sqlite": 0.01, "postgresql": 0.05}[store.engine.dialect.name]


def test_sqlite_rows_are_stored_exactly_as_sqlalchemy_stores_them(tmp_path, spend_event: Events) -> None:
    """The SQLite spend path builds rows by hand for speed (`ledger.sqlite_row`); each stored value (its SQLite
    type and bytes) must be what an INSERT through SQLAlchemy's columns stores, or readers would disagree."""
    events = [
        spend_event("plain"),
        spend_event("whole-second-utc", started_at=datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        spend_event("whole-second", started_at=datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5))),
                    cost="0", search_units=0.0),
        spend_event("full", key_hash=digest("a"), key_alias="ci", user_id="alice", end_user="u", input_tokens=3,
                    total_tokens=4, fallback_used=True, cost="0.0123456789", error_class="RateLimitError",
                    status=429, started_at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), latency_ms=7,
                    guardrails=[{"name": "pii", "action": "masked"}], tags=["a", "b"], cache="partial",
                    metadata={"price": Decimal("1.5"), "at": T0, "tags": ("a",), "name": "Zoë", "n": 2**70}),
    ]
    by_hand, by_sqlalchemy = (Store.connect(f"sqlite:///{tmp_path / name}.db") for name in ("hand", "core"))
    try:
        by_hand.write_batch(events)
        with by_sqlalchemy.engine.begin() as connection:
            connection.execute(tables.spend_logs.insert(),
                               [{name: getattr(event, name) for name in ledger.LOG_COLUMNS} for event in events])
        columns = ", ".join(f"typeof({name}), quote({name})" for name in ledger.LOG_COLUMNS)
        stored = []
        for store in (by_hand, by_sqlalchemy):
            raw = sqlite3.connect(store.engine.url.database)
            stored.append(raw.execute(f"SELECT {columns} FROM spend_logs ORDER BY request_id").fetchall())
            raw.close()
        assert len(stored[0]) == len(events) and stored[0] == stored[1]
    finally:
        by_hand.close()
        by_sqlalchemy.close()


def test_every_value_a_spend_row_holds_comes_back_as_written_whatever_its_characters(
        store: Store, spend_event: Events) -> None:
    """PostgreSQL gets each column as an array literal made by hand (`encoding.pg_array`): quotes, backslashes,
    commas, braces, the word NULL and empty strings must come back as they went in, in rows and rollups."""
    odd = 'a"b\\c,{d} NULL\n'
    written = spend_event("odd", key_hash=digest("k"), key_alias=odd, user_id="", end_user="NULL", key_id="k,1",
                          team_id='t"', model_alias="m{1}", deployment="d\\", provider="p q", error_class="E,1",
                          tags=["x,y", '"q"', "b\\s", "NULL"], metadata={"s": odd}, guardrails=[{"name": odd}],
                          started_at=datetime(2025, 3, 4, 5, 6, 7, 89, tzinfo=timezone(timedelta(hours=-5))),
                          fallback_used=True, cost="0.0000000001", search_units=2, latency_ms=0.1, cache="hit",
                          status=503, input_tokens=7, total_tokens=9, cost_saved=Decimal("0.25"))
    assert store.write_batch([written, spend_event("plain")]) == 2
    got = store.spend_log("odd")
    assert got is not None
    for name in ledger.LOG_COLUMNS:
        want = getattr(written, name)
        if name == "started_at":
            want = want.astimezone(UTC)
        elif name == "metadata":
            want = {"s": odd}
        assert getattr(got, name) == want, name
    rows = store.spend_report(group_by=["tag", "end_user", "key", "team", "model"], granularity="all")
    assert {(r["tag"], r["end_user"], r["key"], r["team"], r["model"]) for r in rows} == {
        (tag, "NULL", "k,1", 't"', "m{1}") for tag in ("x,y", '"q"', "b\\s", "NULL")}


def test_sqlite_spend_batches_keep_one_connection_and_give_it_back_after_an_error(
    tmp_path, spend_event: Events
) -> None:
    path = tmp_path / "held.db"
    store = Store.connect(f"sqlite:///{path}", busy_timeout_ms=50)
    pool = store.engine.pool
    try:
        assert store.write_batch([spend_event("a")]) == 1
        assert store.write_batch([spend_event("b")]) == 1
        assert pool.checkedout() == 1  # kept between batches, not checked out and in for each
        holder = sqlite3.connect(str(path), isolation_level=None, timeout=5)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(OperationalError):
                store.write_batch([spend_event("c")])
            assert pool.checkedout() == 0  # a failed batch gives its connection back
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.write_batch([spend_event("c"), spend_event("a")]) == 1
        assert sorted(log.request_id for log in store.spend_logs()[0]) == ["a", "b", "c"]
    finally:
        store.close()
    assert pool.checkedout() == 0


def test_a_batch_in_flight_when_the_store_closes_returns_its_connection(tmp_path) -> None:
    store = Store.connect(f"sqlite:///{tmp_path / 'closing.db'}")
    pool = store.engine.pool
    held = store._spend_connection
    with held.taken():
        assert pool.checkedout() == 1
        store.release_spend_connection()  # what close() does first, with this batch still running
    assert pool.checkedout() == 0  # returned, not kept on a closed store
    store.close()


def test_decimal_and_datetime_in_event_metadata_are_stored_as_strings(
    store: Store, spend_event: Events
) -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    store.write_batch([spend_event("r1", metadata={"price": Decimal("1.5"), "at": at, "tags": ("a",)})])
    assert store.spend_logs()[0][0].metadata == {"price": "1.5", "at": at.isoformat(), "tags": ["a"]}


def test_an_event_with_a_naive_start_time_is_refused(store: Store, spend_event: Events) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.write_batch([spend_event("r1", started_at=datetime(2025, 1, 1))])
    assert store.spend_logs()[1] == 0

