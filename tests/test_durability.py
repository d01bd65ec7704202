"""No request's spend is lost: not when the process gets SIGTERM under load, not when the DB is down."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.serving import MASTER_KEY, admin, cli_process, config_for, running_proxy, wait_until

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
BODY = {"model": "local-bm25", "query": "capital of the United States",
        "documents": ["Washington is the capital of the United States.", "Paris is in France."]}


def count_rows(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("select count(*) from spend_logs")).scalar_one()
    finally:
        engine.dispose()


def test_sigterm_under_load_loses_no_spend_row(tmp_path):
    db = tmp_path / "spend.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: local-bm25\n    litellm_params: {model: local/bm25}\n"
        f"general_settings: {{master_key: {MASTER_KEY}, database_url: 'sqlite:///{db}', spend_flush_interval: 2}}\n"
    )
    successes = []
    stop = threading.Event()

    with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, url):
        def load() -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10) as c:
                while not stop.is_set():
                    try:
                        response = c.post("/v2/rerank", json=BODY)
                    except httpx.HTTPError:
                        return
                    if response.status_code == 200:
                        successes.append(response.headers["x-request-id"])

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(successes) >= 200, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert successes
    assert count_rows(f"sqlite:///{db}") == len(successes)


DB_PARAMS = [pytest.param("sqlite", id="sqlite"),
             pytest.param("postgres", id="postgres", marks=pytest.mark.skipif(
                 not POSTGRES_URL, reason="set TEST_POSTGRES_URL to run against PostgreSQL"))]


@pytest.fixture(params=DB_PARAMS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spend.db'}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("drop schema if exists public cascade"))
        conn.execute(sa.text("create schema public"))
    engine.dispose()
    return POSTGRES_URL


def hold_database(db_url: str, release: threading.Event) -> threading.Thread:
    """Make the spend tables unwritable until `release` is set (an exclusive lock from another client)."""
    ready = threading.Event()

    def hold() -> None:
        if db_url.startswith("sqlite"):
            conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=10)
            conn.isolation_level = None
            conn.execute("BEGIN EXCLUSIVE")
            ready.set()
            release.wait(30)
            conn.execute("ROLLBACK")
            conn.close()
        else:
            engine = sa.create_engine(db_url)
            with engine.connect() as conn:
                trans = conn.begin()
                conn.execute(sa.text("LOCK TABLE spend_logs IN ACCESS EXCLUSIVE MODE"))
                ready.set()
                release.wait(30)
                trans.rollback()
            engine.dispose()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


def test_database_outage_during_traffic_loses_no_row(db_url):
    with running_proxy(config_for(None, db_url)) as server, admin(server.url) as client:
        assert client.post("/v2/rerank", json=BODY).status_code == 200
        wait_until(lambda: count_rows(db_url) == 1)
        release = threading.Event()
        holder = hold_database(db_url, release)
        served = [client.post("/v2/rerank", json=BODY).status_code for _ in range(30)]
        assert served == [200] * 30
        time.sleep(0.5)
        release.set()
        holder.join(timeout=30)
        wait_until(lambda: count_rows(db_url) == 31, timeout=30)
