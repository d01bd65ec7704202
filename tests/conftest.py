from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from proxy.spend import tables as spend_tables
from proxy.spend.db import database_url
from proxy.spend.events import SpendEvent
from proxy.spend.store import Store
from tests.fakes.cohere import FakeCohere
from tests.fakes.held import HeldCohere
from tests.serving import admin, config_for, running_proxy

CAPITALS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) "
    "is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since before the United States was a country. "
    "As of 2017, capital punishment is legal in 30 of the 50 states.",
]
CAPITAL_QUERY = "What is the capital of the United States?"


@pytest.fixture(scope="session")
def fake_cohere():
    fake = FakeCohere().start()
    yield fake
    fake.stop()


@pytest.fixture
def cohere_upstream(fake_cohere):
    fake_cohere.reset()
    return fake_cohere


# --- held fake upstreams for the routing tests: three per module, `a`, `b` and `c` reset per test ---------

@pytest.fixture(scope="module")
def held_upstreams() -> Iterator[list[HeldCohere]]:
    fakes = [HeldCohere().start() for _ in range(3)]
    yield fakes
    for fake in fakes:
        fake.release()
        fake.stop()


@pytest.fixture
def a(held_upstreams: list[HeldCohere]) -> HeldCohere:
    held_upstreams[0].reset()
    return held_upstreams[0]


@pytest.fixture
def b(held_upstreams: list[HeldCohere]) -> HeldCohere:
    held_upstreams[1].reset()
    return held_upstreams[1]


@pytest.fixture
def c(held_upstreams: list[HeldCohere]) -> HeldCohere:
    held_upstreams[2].reset()
    return held_upstreams[2]


# --- database fixtures (proxy.spend): every DB test runs on SQLite, and on PostgreSQL when configured ----

POSTGRES_ENV = "TEST_POSTGRES_URL"


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" always; "postgres" when TEST_POSTGRES_URL names a server we may create databases on."""
    if request.param == "postgres" and not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL variant needs {POSTGRES_ENV}, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    return request.param


@contextmanager
def scratch_database(backend: str, directory: Path) -> Iterator[str]:
    """A new, empty database for `backend` (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    name = f"rerank_proxy_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{directory / name}.db"
        return
    admin = database_url(os.environ[POSTGRES_ENV])
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def store_url(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the session: copied for each test on SQLite (`test_db_url`), shared and
    emptied per test by `store` on PostgreSQL."""
    with scratch_database(db_backend, tmp_path_factory.mktemp("db")) as url:
        Store.connect(url).close()
        yield url


@pytest.fixture
def fresh_db_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of the current backend."""
    with scratch_database(db_backend, tmp_path) as url:
        yield url


@pytest.fixture
def test_db_url(store_url: str, db_backend: str, tmp_path: Path) -> str:
    """The migrated database of one test. SQLite: a copy of the session's file, so that a write which outlives
    its test (a batch still in flight in a worker thread when a writer's `stop()` timed out) lands in that
    test's file, not in the next test's tables. PostgreSQL: the session database, emptied by `store`."""
    if db_backend != "sqlite":
        return store_url
    path = tmp_path / "store.db"
    source, copy = sqlite3.connect(make_url(store_url).database), sqlite3.connect(path)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    """A SQLite file of the test's own, for server tests whose subject is not the database (one backend)."""
    return f"sqlite:///{tmp_path / 'spend.db'}"


@pytest.fixture
def store(test_db_url: str) -> Iterator[Store]:
    """A `Store` on the test's database with every table emptied; SQLite waits at most 100 ms on locks."""
    store = Store.connect(test_db_url, busy_timeout_ms=100)
    with store.engine.begin() as connection:
        for table in reversed(spend_tables.metadata.sorted_tables):
            connection.execute(table.delete())
    yield store
    store.close()


@contextmanager
def database_outage(url: str, backend: str) -> Iterator[None]:
    """Make the database at `url` refuse writes until the block ends.

    SQLite: another connection holds `BEGIN EXCLUSIVE`. PostgreSQL: the database stops accepting
    connections and its backends are terminated.
    """
    if backend == "sqlite":
        holder = sqlite3.connect(make_url(url).database, isolation_level=None, timeout=5)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        return
    name = make_url(url).database
    admin = create_engine(database_url(os.environ[POSTGRES_ENV]), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        admin.dispose()


@pytest.fixture
def db_outage(test_db_url: str, db_backend: str) -> Callable[[], AbstractContextManager[None]]:
    """`with db_outage(): ...` makes the test's database refuse writes until the block ends."""
    return lambda: database_outage(test_db_url, db_backend)


@pytest.fixture
def spend_event() -> Callable[..., SpendEvent]:
    """Factory: `spend_event("req-1", cost="0.002", key_hash=..., end_user=...)` with sensible defaults."""

    def make(request_id: str, *, cost: str | Decimal = "0.001", **fields: Any) -> SpendEvent:
        defaults: dict[str, Any] = {
            "started_at": datetime(2025, 1, 1, tzinfo=UTC),
            "model_alias": "rerank-english",
            "status": 200,
            "latency_ms": 12.5,
            "deployment": "cohere-main",
            "provider": "cohere",
            "provider_model": "rerank-english-v3.0",
            "search_units": 1.0,
        }
        return SpendEvent(request_id=request_id, cost=Decimal(cost), **{**defaults, **fields})

    return make


@pytest.fixture(scope="module")
def admin_client(proxy_url):
    """An admin (master key) client for the module's own `proxy_url` server."""
    with admin(proxy_url) as client:
        yield client


@pytest.fixture(scope="module")
def admin_server(db_backend, fake_cohere, tmp_path_factory):
    """A proxy per module on a new database of the backend: the fake Cohere, `local-bm25`, and `tagged-bm25`
    (a deployment with `litellm_params.tags: [d-tag]`)."""
    tagged = [{"model_name": "tagged-bm25", "litellm_params": {"model": "local/bm25", "tags": ["d-tag"]}}]
    with scratch_database(db_backend, tmp_path_factory.mktemp("db")) as url, \
            running_proxy(config_for(fake_cohere.url, url, model_list=tagged)) as live:
        yield live.url


@pytest.fixture
def admin_api(admin_server):
    """A master-key client of `admin_server`."""
    with admin(admin_server) as client:
        yield client
