"""`general_settings.database_connection_pool_limit` bounds the connections one process holds: the operator's
guide counts PostgreSQL connections as replicas x workers x this limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import create_engine, text

from proxy.app import create_app
from proxy.settings import parse_config
from proxy.spend.db import database_url
from tests.fakes.server import LiveServer
from tests.serving import MASTER_KEY, config_for


def test_the_pool_limit_caps_the_connections_of_a_busy_process(test_db_url: str, db_backend: str) -> None:
    config = config_for(None, test_db_url, general_settings={"database_connection_pool_limit": 2})
    app = create_app(parse_config(config, {}))
    with LiveServer(app, lifespan="on") as server:
        pool = app.state.runtime.store.engine.pool
        assert pool.size() == 2 and pool._max_overflow == 0  # SQLAlchemy's QueuePool: no connections beyond

        def generate_key(_: int) -> int:  # each one writes to the database
            return httpx.post(server.url + "/key/generate", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                              json={}, timeout=30).status_code

        with ThreadPoolExecutor(8) as threads:
            assert set(threads.map(generate_key, range(40))) == {200}
        assert pool.checkedin() + pool.checkedout() <= 2
        if db_backend == "postgres":
            url = database_url(test_db_url)
            admin = create_engine(url)
            try:
                with admin.connect() as connection:
                    held = connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
                                                   "AND pid <> pg_backend_pid()"), {"name": url.database}).scalar()
            finally:
                admin.dispose()
            assert held <= 2


def test_without_a_limit_the_pool_is_sqlalchemys_default(test_db_url: str) -> None:
    app = create_app(parse_config(config_for(None, test_db_url), {}))
    with LiveServer(app, lifespan="on"):
        pool = app.state.runtime.store.engine.pool
        assert pool.size() == 5 and pool._max_overflow == 10
