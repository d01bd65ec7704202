"""Routing through the running server: headers, per-request and per-key fallbacks, /health, background
health checks, and a deployment killed mid-traffic."""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import httpx
import pytest

from proxy.app import create_app
from proxy.settings import parse_config
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.held import HeldCohere
from tests.fakes.server import LiveServer, free_port
from tests.routing_support import cohere_deployment as deployment
from tests.serving import MASTER_KEY, config_for, running_proxy, wait_until

BODY = {"query": CAPITAL_QUERY, "documents": CAPITALS}


@pytest.fixture(scope="module")
def proxy_url(held_upstreams, tmp_path_factory):
    a, b, _ = held_upstreams
    dead = f"http://user:hunter2@127.0.0.1:{free_port()}/v1?token=query-secret"
    config = config_for(None, f"sqlite:///{tmp_path_factory.mktemp('db') / 'spend.db'}", model_list=[
        deployment("pair", "pair-a", a.url, order=1), deployment("pair", "pair-b", b.url, order=2),
        deployment("alone", "alone-a", a.url, model="fault-503"),
        deployment("ok", "ok-b", b.url),
        deployment("unreachable", "dead", dead, api_key="sk-upstream-secret"),
    ], router_settings={"num_retries": 1, "retry_after": 0.001, "max_retry_after": 0.01, "cooldown_time": 0.2,
                        "model_group_alias": {"pair-alias": "pair", "secret": {"model": "ok", "hidden": True}}})
    with running_proxy(config) as server:
        yield server.url


def call(url: str, key: str = MASTER_KEY, **body) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", headers={"Authorization": f"Bearer {key}"}, json={**BODY, **body},
                      timeout=30)


def test_headers_name_the_deployment_that_answered(proxy_url, a):
    response = call(proxy_url, model="pair")
    assert response.status_code == 200
    assert response.headers["x-model-deployment"] == "pair-a" and response.headers["x-fallback-used"] == "false"
    a.fail_next("500")
    response = call(proxy_url, model="pair")
    assert response.status_code == 200
    assert response.headers["x-model-deployment"] == "pair-b" and response.headers["x-fallback-used"] == "false"


def test_failure_is_one_503_with_retry_after_and_one_warning_without_the_query(proxy_url, caplog):
    with caplog.at_level("WARNING", logger="proxy.routing"):
        response = call(proxy_url, model="alone", query="needle-in-haystack-query")
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert response.headers["x-fallback-used"] == "false"
    assert "All 2 attempt(s) for model 'alone' failed" in response.json()["message"]
    lines = [r.getMessage() for r in caplog.records if "all deployments failed for model 'alone'" in r.getMessage()]
    assert len(lines) == 1 and "alone-a UpstreamUnavailableError" in lines[0]
    assert "needle-in-haystack-query" not in caplog.text


def test_model_group_alias_names_are_served_by_their_alias_and_hidden_ones_are_not_listed(proxy_url, a,
                                                                                          admin_client):
    response = call(proxy_url, model="pair-alias")
    assert response.status_code == 200 and response.headers["x-model-deployment"] == "pair-a"
    assert call(proxy_url, model="secret").headers["x-model-deployment"] == "ok-b"
    listed = {m["id"] for m in admin_client.get("/v1/models").json()["data"]}
    assert {"pair", "pair-alias", "ok"} <= listed and "secret" not in listed
    key = admin_client.post("/key/generate", json={"models": ["pair"]}).json()["key"]
    assert call(proxy_url, key, model="pair").status_code == 200
    assert call(proxy_url, key, model="pair-alias").status_code == 200  # as in LiteLLM: the alias's other name
    assert call(proxy_url, key, model="ok").status_code == 403
    other_name_only = admin_client.post("/key/generate", json={"models": ["pair-alias"]}).json()["key"]
    assert call(proxy_url, other_name_only, model="pair-alias").status_code == 200
    assert call(proxy_url, other_name_only, model="pair").status_code == 403


@pytest.mark.parametrize(("router_settings", "litellm_settings", "attempts"), [
    ({}, {"num_retries": 3}, 4),
    ({"num_retries": 0}, {"num_retries": 3}, 1),
])
def test_num_retries_from_router_settings_else_litellm_settings(c, tmp_path, router_settings, litellm_settings,
                                                               attempts):
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=[deployment("m", "c", c.url)],
                        router_settings={"retry_after": 0.001, "max_retry_after": 0.01, **router_settings},
                        litellm_settings=litellm_settings)
    c.fail_next("500", times=10)
    with running_proxy(config) as server:
        assert call(server.url, model="m").status_code == 503
    assert len(c.requests) == attempts


def test_max_parallel_requests_n_of_n_plus_one_concurrent_requests_reach_the_upstream_and_one_gets_429(c, tmp_path):
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}",
                        model_list=[deployment("capped", "c", c.url, max_parallel_requests=3)])
    with running_proxy(config) as server, ThreadPoolExecutor(4) as pool:
        c.hold()
        try:
            pending = [pool.submit(call, server.url, model="capped") for _ in range(4)]
            first, _ = wait(pending, timeout=15, return_when=FIRST_COMPLETED)
            wait_until(lambda: c.arrived == 3)
            time.sleep(0.05)  # time enough for a fourth call to arrive, were it sent
            assert c.arrived == 3
        finally:
            c.release()
        refused = first.pop().result()
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "at its max_parallel_requests (3 calls in flight)" in refused.json()["message"]
        assert sorted(future.result().status_code for future in pending) == [200, 200, 200, 429]
        assert call(server.url, model="capped").status_code == 200
    assert len(c.requests) == 4


def test_per_request_fallbacks(proxy_url):
    response = call(proxy_url, model="alone", fallbacks=["ok"])
    assert response.status_code == 200
    assert response.headers["x-fallback-used"] == "true" and response.headers["x-model-deployment"] == "ok-b"


def test_per_request_fallbacks_are_limited_to_models_the_key_may_use(proxy_url, admin_client):
    key = admin_client.post("/key/generate", json={"models": ["alone"]}).json()["key"]
    assert call(proxy_url, key, model="alone", fallbacks=["ok"]).status_code == 503


def test_per_key_fallbacks_from_generate_and_update(proxy_url, admin_client):
    created = admin_client.post("/key/generate", json={"fallbacks": ["ok"]})
    assert created.status_code == 200 and created.json()["fallbacks"] == ["ok"]
    key = created.json()["key"]
    response = call(proxy_url, key, model="alone")
    assert response.status_code == 200 and response.headers["x-model-deployment"] == "ok-b"
    updated = admin_client.post("/key/update", json={"key": key, "fallbacks": [{"alone": ["local-bm25"]}]})
    assert updated.status_code == 200
    response = call(proxy_url, key, model="alone")
    assert response.status_code == 200 and response.headers["x-model-deployment"] == "local-bm25#0"
    assert response.headers["x-fallback-used"] == "true"


def test_key_fallbacks_must_be_aliases_or_alias_maps(admin_client):
    response = admin_client.post("/key/generate", json={"fallbacks": [{"alone": "ok"}]})
    assert response.status_code == 422 and "fallbacks" in response.json()["message"]


def test_health_probes_every_deployment_and_never_shows_secrets(proxy_url, admin_client):
    response = admin_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    healthy = {e["model_id"] for e in body["healthy_endpoints"]}
    unhealthy = {e["model_id"]: e for e in body["unhealthy_endpoints"]}
    assert {"pair-a", "pair-b", "ok-b", "local-bm25#0"} <= healthy
    assert set(unhealthy) == {"alone-a", "dead"}
    assert unhealthy["alone-a"]["error"].startswith("UpstreamUnavailableError: cohere returned HTTP 503")
    assert unhealthy["dead"]["api_base"].startswith("http://127.0.0.1:") and unhealthy["dead"]["model_name"]
    assert body["healthy_count"] == len(healthy) and body["unhealthy_count"] == 2
    for secret in ("hunter2", "query-secret", "sk-upstream-secret", "test-key"):
        assert secret not in response.text


def test_health_needs_the_master_key(proxy_url, admin_client):
    key = admin_client.post("/key/generate", json={}).json()["key"]
    assert httpx.get(proxy_url + "/health", headers={"Authorization": f"Bearer {key}"}).status_code == 403


def test_background_health_checks_cool_a_failing_deployment_and_notice_it_recover(a, b, tmp_path):
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=[
        deployment("m", "a", a.url, order=1), deployment("m", "b", b.url, order=2)],
        general_settings={"background_health_checks": True, "health_check_interval": 0.1},
        router_settings={"allowed_fails": 1, "cooldown_time": 30})
    a.fail_next("500", times=100_000)
    app = create_app(parse_config(config, {}))
    with LiveServer(app, lifespan="on") as server:
        router = app.state.runtime.router
        wait_until(lambda: router.deployment_states()["a"] == "cooldown")
        response = call(server.url, model="m")
        assert response.status_code == 200 and response.headers["x-model-deployment"] == "b"
        assert {r.body["query"] for r in a.requests} == {"health check"}  # only probes reached a
        a.reset()
        wait_until(lambda: router.deployment_states()["a"] == "healthy")
        assert call(server.url, model="m").headers["x-model-deployment"] == "a"


def test_killing_one_of_two_deployments_mid_traffic_fails_no_request(tmp_path):
    a, b = HeldCohere().start(), HeldCohere().start()
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=[
        deployment("m", "a", a.url), deployment("m", "b", b.url)],
        router_settings={"retry_after": 0.001, "max_retry_after": 0.01})
    statuses: list[int] = []
    done = threading.Event()
    try:
        with running_proxy(config) as server:
            def client(_: int) -> None:
                with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                  timeout=30) as http:
                    for _ in range(40):
                        statuses.append(http.post("/v2/rerank", json={**BODY, "model": "m"}).status_code)
                        if len(statuses) >= 40:
                            done.set()

            with ThreadPoolExecutor(4) as pool:
                running = [pool.submit(client, i) for i in range(4)]
                assert done.wait(30)
                b.stop()
                for future in running:
                    future.result()
            served_by_b = len(b.requests)
    finally:
        a.stop()
        b.stop()
    assert len(statuses) == 160 and set(statuses) == {200}
    assert 0 < served_by_b < 160 and len(a.requests) + served_by_b >= 160
