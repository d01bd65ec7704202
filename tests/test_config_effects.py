"""Settings whose effect had no test of its own: each test shows one key changing what the proxy does."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

import proxy
from proxy.request import make_request
from proxy.settings import ConfigError, parse_config
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import cli_process

REQUEST = make_request(CAPITAL_QUERY, CAPITALS, top_n=2)


def one(config: dict[str, Any], environ: dict[str, str] | None = None) -> proxy.providers.Deployment:
    settings = parse_config(config, environ or {})
    (deployments,) = settings.aliases.values()
    return deployments[0]


def test_request_timeout_is_the_timeout_of_deployments_that_set_none():
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "cohere/x", "api_key": "k"}}],
              "litellm_settings": {"request_timeout": 7.5}}
    deployment = one(config)
    assert deployment.provider.build(REQUEST, deployment).timeout == 7.5  # what the transport waits
    config["model_list"][0]["litellm_params"]["timeout"] = 2
    assert one(config).timeout == 2
    del config["litellm_settings"], config["model_list"][0]["litellm_params"]["timeout"]
    assert one(config).timeout == 60.0
    with pytest.raises(ConfigError, match="litellm_settings.request_timeout: Input should be greater than 0"):
        parse_config({"litellm_settings": {"request_timeout": 0}}, {})


def test_custom_llm_provider_names_the_provider_of_a_model_without_prefix(fake_cohere):
    fake_cohere.reset()
    config = {"model_list": [{"model_name": "m", "litellm_params": {
        "model": "rerank-v3.5", "custom_llm_provider": "cohere", "api_key": "test-key", "api_base": fake_cohere.url}}]}
    deployment = one(config)
    assert (deployment.provider.name, deployment.model) == ("cohere", "rerank-v3.5")
    config["model_list"][0]["litellm_params"]["model"] = "cohere/rerank-v3.5"  # a prefix already there stays
    assert one(config).model == "rerank-v3.5"
    config["model_list"][0]["litellm_params"]["custom_llm_provider"] = "openai"
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params: custom_llm_provider 'openai'"):
        one(config)


def test_max_documents_refuses_larger_requests(fake_cohere, tmp_path):
    from tests.serving import config_for, running_proxy

    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", general_settings={"max_documents": 3})
    with running_proxy(config) as server:
        answer = httpx.post(f"{server.url}/v2/rerank", headers={"authorization": "Bearer sk-master-test"},
                            json={"model": "local-bm25", "query": "q", "documents": ["a", "b", "c", "d"]})
    assert answer.status_code == 400
    assert "at most 3 are allowed" in answer.json()["message"]


def test_redis_host_port_and_password_make_the_redis_url():
    settings = parse_config({"router_settings": {"redis_host": "cache.internal", "redis_port": 6380,
                                                 "redis_password": "pw"}}, {})
    assert settings.redis_url == "redis://:pw@cache.internal:6380"
    assert parse_config({"router_settings": {"redis_host": "h"}}, {}).redis_url == "redis://h:6379"


def test_environment_variables_feed_os_environ_references_and_the_real_environment_wins():
    config = {"environment_variables": {"MY_KEY": "from-config"},
              "model_list": [{"model_name": "m", "litellm_params": {"model": "cohere/x",
                                                                    "api_key": "os.environ/MY_KEY"}}]}
    assert one(config).api_key == "from-config"
    assert one(config, {"MY_KEY": "from-env"}).api_key == "from-env"


def test_set_verbose_turns_on_debug_logs_like_detailed_debug(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n  - model_name: local-bm25\n    litellm_params: {model: local/bm25}\n"
                      f"general_settings: {{database_url: 'sqlite:///{tmp_path / 'spend.db'}'}}\n"
                      "litellm_settings: {set_verbose: true}\n")
    with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, url):
        assert httpx.get(f"{url}/health/liveliness", timeout=30).status_code == 200
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert " DEBUG " in output and "/health/liveliness" in output  # probes are logged at DEBUG only


@pytest.mark.parametrize(("ttl", "after_block"), [(0, 403), (600, 200)])
def test_key_cache_ttl_is_how_long_another_replica_trusts_a_key_it_looked_up(tmp_path, ttl, after_block):
    from tests.serving import admin, config_for, running_proxy

    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", general_settings={"key_cache_ttl": ttl})
    body = {"model": "local-bm25", "query": "q", "documents": ["a", "b"]}
    with running_proxy(config) as first, running_proxy(config) as second, admin(first.url) as client:
        key = client.post("/key/generate", json={}).json()["key"]
        auth = {"authorization": f"Bearer {key}"}
        assert httpx.post(f"{second.url}/v2/rerank", headers=auth, json=body).status_code == 200  # now cached
        assert client.post("/key/block", json={"key": key}).status_code == 200  # on the first replica
        assert httpx.post(f"{second.url}/v2/rerank", headers=auth, json=body).status_code == after_block


@pytest.mark.parametrize(("disabled", "rows"), [(True, 0), (False, 1)])
def test_disable_spend_logs_writes_no_spend_rows(tmp_path, disabled, rows):
    from proxy.spend.store import Store
    from tests.serving import config_for, running_proxy

    url = f"sqlite:///{tmp_path / 'spend.db'}"
    config = config_for(None, url, general_settings={"disable_spend_logs": disabled})
    with running_proxy(config) as server:
        assert httpx.post(f"{server.url}/v2/rerank", headers={"authorization": "Bearer sk-master-test"},
                          json={"model": "local-bm25", "query": "q", "documents": ["a"]}).status_code == 200
    store = Store.connect(url)  # the server has stopped: everything it queued is written by now
    try:
        with store.engine.connect() as connection:
            count = connection.exec_driver_sql("SELECT count(*) FROM spend_logs").scalar()
    finally:
        store.close()
    assert count == rows


def test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent():
    from proxy.app import build_router
    from proxy.governance import Governance

    bm25 = {"model": "local/bm25"}
    config = {"model_list": [{"model_name": "a", "litellm_params": bm25}, {"model_name": "b", "litellm_params": bm25}],
              "litellm_settings": {"fallbacks": [{"a": ["b"]}], "default_fallbacks": ["b"], "max_budget": 5,
                                   "budget_duration": "1d", "max_end_user_budget": 0.5}}
    settings = parse_config(config, {})
    router = build_router(settings, None)
    assert (router.fallbacks, router.default_fallbacks) == ({"a": ("b",)}, ["b"])
    governance = Governance(settings, None, router, None)
    assert (governance.proxy_budget, governance.proxy_duration) == (5, "1d")
    assert governance.default_end_user_budget == pytest.approx(0.5)


def test_headers_and_extra_headers_reach_the_upstream(fake_cohere):
    fake_cohere.reset()
    proxy.rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_key="test-key", api_base=fake_cohere.url,
                 headers={"x-team": "search"}, extra_headers={"x-trace": "t-1"})
    assert (fake_cohere.last.headers["x-team"], fake_cohere.last.headers["x-trace"]) == ("search", "t-1")
