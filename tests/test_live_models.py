"""Models change without a restart: the model API, stored (encrypted) models, config reload, other replicas."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from proxy import Router
from proxy.routing.cooldowns import Cooldowns
from proxy.secret_box import SecretBox
from proxy.settings import ConfigError, parse_config
from proxy.spend.tables import proxy_models
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import MASTER_KEY, admin, cli_process, config_for, running_proxy, wait_until

SALT = "a-salt-key-for-tests"
PROVIDER_KEY = "test-key"  # what the fake Cohere accepts
BODY = {"model": "stored", "query": CAPITAL_QUERY, "documents": CAPITALS}


def storing_config(db_url: str, **general: Any) -> dict[str, Any]:
    return config_for(None, db_url, general_settings={"store_model_in_db": True, "model_sync_interval": 0.1,
                                                      **general})


def cohere_model(url: str, model_id: str = "stored-1", alias: str = "stored") -> dict[str, Any]:
    return {"model_name": alias, "model_info": {"id": model_id, "team": "search"},
            "litellm_params": {"model": "cohere/rerank-english-v3.0", "api_base": url, "api_key": PROVIDER_KEY}}


def rerank(url: str, model: str = "stored") -> httpx.Response:
    return httpx.post(f"{url}/v2/rerank", json={**BODY, "model": model},
                      headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10)


@pytest.fixture
def salt_env() -> dict[str, str]:
    return {"LITELLM_SALT_KEY": SALT}


def test_a_model_added_through_the_api_serves_at_once_and_its_key_is_sealed(
        store, test_db_url, cohere_upstream, salt_env, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with running_proxy(storing_config(test_db_url), salt_env) as server, admin(server.url) as client:
        assert rerank(server.url).status_code == 404
        added = client.post("/model/new", json=cohere_model(cohere_upstream.server.url))
        assert added.status_code == 200, added.text
        assert added.json()["model_id"] == "stored-1" and "api_key" not in added.json()["litellm_params"]
        answer = rerank(server.url)
        assert answer.status_code == 200 and answer.headers["x-model-deployment"] == "stored-1"
        assert cohere_upstream.last.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
        info = client.get("/model/info").json()["data"]
        stored = [m for m in info if m["model_info"]["id"] == "stored-1"]
        assert stored and stored[0]["model_info"]["db_model"] is True and stored[0]["model_info"]["team"] == "search"
        assert stored[0]["model_info"]["provider"] == "cohere"
        group = client.get("/model_group/info", params={"model_group": "stored"}).json()["data"]
        assert group[0]["providers"] == ["cohere"] and group[0]["health"]["healthy"] == 1
        for path in ("/model/info", "/model_group/info", "/v1/models"):
            assert PROVIDER_KEY not in client.get(path).text
    with store.engine.connect() as connection:
        sealed = connection.execute(select(proxy_models.c.litellm_params)).scalar_one()
    assert PROVIDER_KEY not in sealed and "api_base" not in sealed
    assert SecretBox(SALT).open(sealed)["api_key"] == PROVIDER_KEY
    assert PROVIDER_KEY not in caplog.text


def test_stored_models_survive_a_restart_and_update_and_delete_change_them(
        store, test_db_url, cohere_upstream, salt_env) -> None:
    config = storing_config(test_db_url)
    with running_proxy(config, salt_env) as server, admin(server.url) as client:
        assert client.post("/model/new", json=cohere_model(cohere_upstream.server.url)).status_code == 200
    with running_proxy(config, salt_env) as server, admin(server.url) as client:
        assert rerank(server.url).status_code == 200
        renamed = client.patch("/model/stored-1/update", json={"model_name": "renamed"})
        assert renamed.status_code == 200 and renamed.json()["model_name"] == "renamed"
        assert rerank(server.url).status_code == 404 and rerank(server.url, "renamed").status_code == 200
        wrong_key = client.post("/model/update", json={"model_info": {"id": "stored-1"},
                                                       "litellm_params": {"api_key": "not-the-key"}})
        assert wrong_key.status_code == 200
        assert rerank(server.url, "renamed").status_code == 502  # the new key is used: the fake refuses it
        assert client.post("/model/delete", json={"id": "stored-1"}).status_code == 200
        assert rerank(server.url, "renamed").status_code == 404
        assert client.post("/model/delete", json={"id": "stored-1"}).status_code == 404
        trail = client.get("/audit/logs", params={"table_name": "proxy_models"}).json()["audit_logs"]
        assert [t["action"] for t in trail] == ["deleted", "updated", "updated", "created"]
        renaming = trail[2]
        assert renaming["before_value"]["model_name"] == "stored"
        assert renaming["updated_values"]["model_name"] == "renamed"
        assert "not-the-key" not in str(trail) and PROVIDER_KEY not in str(trail)
    with running_proxy(config, salt_env) as server:
        assert rerank(server.url, "renamed").status_code == 404


def test_config_file_models_cannot_be_changed_through_the_api(store, test_db_url, cohere_upstream, salt_env) -> None:
    with running_proxy(storing_config(test_db_url), salt_env) as server, admin(server.url) as client:
        clash = client.post("/model/new", json=cohere_model(cohere_upstream.server.url, model_id="local-bm25#0"))
        assert clash.status_code == 400 and "config file" in clash.json()["message"]
        assert client.post("/model/delete", json={"id": "local-bm25#0"}).status_code == 400
        bad = client.post("/model/new", json={"model_name": "x", "litellm_params": {"model": "nope/model"}})
        assert bad.status_code == 400 and "nope" in bad.json()["message"]
        assert client.post("/model/new", json={"model_name": "x"}).status_code == 422
        assert rerank(server.url, "local-bm25").status_code == 200


def test_without_store_model_in_db_the_api_says_how_to_turn_it_on(test_db_url, cohere_upstream) -> None:
    with running_proxy(config_for(None, test_db_url)) as server, admin(server.url) as client:
        refused = client.post("/model/new", json=cohere_model(cohere_upstream.server.url))
        assert refused.status_code == 400 and "store_model_in_db" in refused.json()["message"]


def test_storing_models_needs_a_key_to_seal_them(test_db_url) -> None:
    config = storing_config(test_db_url)
    config["general_settings"].pop("master_key")
    with pytest.raises(ConfigError, match="LITELLM_SALT_KEY"):
        parse_config(config, {})
    assert parse_config(config, {"LITELLM_SALT_KEY": "k"}).general.store_model_in_db


def test_a_change_on_one_replica_reaches_another_and_deleting_under_load_fails_nothing(
        store, test_db_url, cohere_upstream, salt_env) -> None:
    config = storing_config(test_db_url)
    # Two deployments behind one alias: one from the file, one stored; deleting the stored one moves traffic.
    config["model_list"].append({"model_name": "stored", "litellm_params": {"model": "local/bm25"},
                                 "model_info": {"id": "file-local"}})
    with running_proxy(config, salt_env) as one, running_proxy(config, salt_env) as two, admin(one.url) as client:
        assert client.post("/model/new", json=cohere_model(cohere_upstream.server.url)).status_code == 200

        def both_use_it() -> bool:
            ids = {rerank(two.url).headers.get("x-model-deployment") for _ in range(20)}
            return "stored-1" in ids

        wait_until(both_use_it, timeout=5)
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10) as c:
                while not stop.is_set():
                    for url in (one.url, two.url):
                        statuses.append(c.post(f"{url}/v2/rerank", json=BODY).status_code)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: len(statuses) > 40)
            assert client.post("/model/delete", json={"id": "stored-1"}).status_code == 200

            def gone_from_two() -> bool:
                listed = httpx.get(f"{two.url}/model/info", headers={"authorization": f"Bearer {MASTER_KEY}"})
                return all(m["model_info"]["id"] != "stored-1" for m in listed.json()["data"])

            wait_until(gone_from_two, timeout=5)
            after = len(statuses)
            wait_until(lambda: len(statuses) > after + 40)  # requests that began before the change are done
            seen = len(cohere_upstream.requests)
            wait_until(lambda: len(statuses) > after + 240)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=15)
        assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
        assert len(cohere_upstream.requests) == seen


def test_reload_swaps_a_good_file_and_keeps_the_old_config_on_a_bad_one(tmp_path, test_db_url) -> None:
    path = tmp_path / "config.yaml"
    config = config_for(None, test_db_url)
    path.write_text(yaml.safe_dump(config))
    settings_env = {"TEST_COHERE_KEY": "x"}
    from proxy.app import create_app
    from proxy.settings import load_settings
    from tests.fakes.server import LiveServer

    with LiveServer(create_app(load_settings(path, settings_env)), lifespan="on") as server, \
            admin(server.url) as client:
        path.write_text("model_list: [not: valid")
        bad = client.post("/config/reload")
        assert bad.status_code == 400 and "still serving the previous one" in bad.json()["message"]
        assert rerank(server.url, "local-bm25").status_code == 200
        config["model_list"].append({"model_name": "second", "litellm_params": {"model": "local/bm25"}})
        config["general_settings"]["max_documents"] = 5
        path.write_text(yaml.safe_dump(config))
        good = client.post("/config/reload")
        assert good.status_code == 200, good.text
        assert good.json()["restart_required"] == ["general_settings.max_documents"]
        assert rerank(server.url, "second").status_code == 200


def test_adopting_a_new_plan_keeps_the_cooldowns_of_deployments_that_stayed() -> None:
    old = Router(model_list=[
        {"model_name": "m", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "kept"}},
        {"model_name": "m", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "gone"}},
    ], clock=lambda: 100.0)
    old.state.cool("kept", 160.0, 100.0)
    new = Router(model_list=[
        {"model_name": "m", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "kept"}},
        {"model_name": "n", "litellm_params": {"model": "local/bm25"}, "model_info": {"id": "added"}},
    ], state=old.state, cooldown_time=9)
    plan_before = old.plan
    old.adopt(new)
    assert old.plan is new.plan is not plan_before
    assert old.deployment_states() == {"kept": "cooldown", "added": "healthy"}
    assert isinstance(old.cooldowns, Cooldowns) and old.cooldowns.policy.cooldown_time == 9


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")
@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_every_worker_and_a_broken_file_is_reported_and_ignored(
        tmp_path: Path, workers: int) -> None:
    path = tmp_path / "config.yaml"
    db = tmp_path / "proxy.db"
    config = config_for(None, f"sqlite:///{db}")
    path.write_text(yaml.safe_dump(config))
    with cli_process(["--config", str(path), "--num_workers", str(workers)]) as (proc, url):
        path.write_text("model_list: [not: valid")
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: proc.output.count("config not reloaded") >= workers, timeout=20)
        assert rerank(url, "local-bm25").status_code == 200
        config["model_list"].append({"model_name": "second", "litellm_params": {"model": "local/bm25"}})
        path.write_text(yaml.safe_dump(config))
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: proc.output.count("config reloaded") >= workers, timeout=20)
        assert {rerank(url, "second").status_code for _ in range(20)} == {200}
        assert proc.poll() is None
