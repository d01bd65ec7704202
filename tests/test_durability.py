"""No request's spend is lost: not when the process gets SIGTERM under load, not when the DB is down."""

from __future__ import annotations

import signal

import sqlalchemy as sa

from tests.conftest import database_outage
from tests.serving import MASTER_KEY, admin, background_load, cli_process, config_for, running_proxy, wait_until

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
    with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, url), \
            background_load(url, BODY) as successes:
        wait_until(lambda: len(successes) >= 200, timeout=60)
        proc.send_signal(signal.SIGTERM)  # while the load goes on
        assert proc.wait(timeout=60) == 0
    assert successes
    assert count_rows(f"sqlite:///{db}") == len(successes)


def test_database_outage_during_traffic_loses_no_row(fresh_db_url, db_backend):
    with running_proxy(config_for(None, fresh_db_url)) as server, admin(server.url) as client:
        key = client.post("/key/generate", json={"key_alias": "outage"}).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/v2/rerank", json=BODY, headers=headers).status_code == 200
        wait_until(lambda: count_rows(fresh_db_url) == 1)
        with database_outage(fresh_db_url, db_backend):
            served = [client.post("/v2/rerank", json=BODY, headers=headers).status_code for _ in range(30)]
            assert served == [200] * 30  # the cached key keeps working, spend waits in memory
            if db_backend == "postgres":  # (SQLite in WAL mode still answers reads)
                unknown = client.post("/v2/rerank", json=BODY, headers={"Authorization": "Bearer sk-unknown"})
                assert unknown.status_code == 503 and unknown.json()["message"]
                ready = client.get("/health/readiness")  # can serve: stays in the load balancer
                assert ready.status_code == 200 and ready.json()["db"] == "unreachable"
        wait_until(lambda: count_rows(fresh_db_url) == 31, timeout=30)
        info = client.get("/key/info", params={"key": key}).json()["info"]
        assert info["spend"] == 0  # local-bm25 is free, but every call is logged


def test_spend_that_cannot_be_written_at_shutdown_has_a_spill_file_by_default(tmp_path):
    from proxy.app import spill_path
    from proxy.settings import parse_config

    def spill_for(general):
        return spill_path(parse_config({"general_settings": general}, {}))

    assert spill_for({"database_url": f"sqlite:///{tmp_path}/s.db"}) == tmp_path / "s.db.spend-spill"
    assert spill_for({"database_url": "postgresql://u@h/db"}).name == "rerank_proxy.spend-spill"
    assert spill_for({"spend_spill_path": str(tmp_path / "x")}) == tmp_path / "x"
