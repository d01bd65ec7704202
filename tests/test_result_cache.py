"""The result cache through a real server: whole answers, per-document scores, controls and accounting.

The fake Cohere upstream records every request, so each test asserts exactly which documents it received.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

import proxy
from tests.serving import MASTER_KEY, admin, config_for, running_proxy, wait_until

DOCS = [f"passage {i} about the capital of country {i} and its rivers" for i in range(12)]
QUERY = "what is the capital of country 7"
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def cached_config(cohere_url: str, db_url: str, **cache_params: Any) -> dict[str, Any]:
    params = {"type": "local", **cache_params}
    return config_for(cohere_url, db_url, litellm_settings={"cache": True, "cache_params": params},
                      router_settings={"num_retries": 0})


def rerank(url: str, documents: list[Any], *, query: str = QUERY, headers: dict[str, str] | None = None,
           **fields: Any) -> httpx.Response:
    body = {"model": "rerank-english-v3.0", "query": query, "documents": documents, **fields}
    return httpx.post(f"{url}/v2/rerank", json=body, headers={**AUTH, **(headers or {})}, timeout=30)


def sent_documents(fake) -> list[list[str]]:
    return [r.body["documents"] for r in fake.requests]


@pytest.fixture
def server(cohere_upstream, sqlite_db_url):
    with running_proxy(cached_config(cohere_upstream.url, sqlite_db_url)) as live:
        yield live


def ranking(response: httpx.Response) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in response.json()["results"]]


def test_an_identical_request_is_answered_without_an_upstream_call(server, cohere_upstream):
    first = rerank(server.url, DOCS[:6], top_n=3)
    second = rerank(server.url, DOCS[:6], top_n=3)
    assert first.status_code == second.status_code == 200
    assert len(cohere_upstream.requests) == 1
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert second.json() == first.json()
    assert second.headers["x-response-cost"] == "0"
    assert Decimal(second.headers["x-cache-saved-cost"]) == Decimal(first.headers["x-response-cost"]) > 0
    assert second.headers["x-model-deployment"] == "cohere-main"


def test_an_overlapping_request_sends_only_the_unseen_documents(server, cohere_upstream, fake_cohere):
    rerank(server.url, DOCS[:8])
    overlapping = DOCS[4:12]
    partial = rerank(server.url, overlapping, top_n=5)
    assert partial.headers["x-cache"] == "partial"
    assert sent_documents(cohere_upstream)[1] == DOCS[8:12]
    assert "top_n" not in cohere_upstream.requests[1].body  # every missing score is needed
    uncached = rerank(server.url, overlapping, top_n=5, cache={"no-cache": True, "no-store": True})
    assert "x-cache" not in uncached.headers
    assert sent_documents(cohere_upstream)[2] == overlapping
    assert ranking(partial) == ranking(uncached)
    assert len(partial.json()["results"]) == 5


def test_every_score_cached_means_no_upstream_call_and_nothing_paid(server, cohere_upstream):
    rerank(server.url, DOCS[:10])
    subset = rerank(server.url, [DOCS[3], DOCS[1], DOCS[7]], return_documents=True)
    assert len(cohere_upstream.requests) == 1
    assert subset.headers["x-cache"] == "hit" and subset.headers["x-response-cost"] == "0"
    assert [r["document"]["text"] for r in subset.json()["results"]] == [
        [DOCS[3], DOCS[1], DOCS[7]][r["index"]] for r in subset.json()["results"]]
    assert subset.json()["meta"]["billed_units"]["search_units"] == 0


def test_no_cache_skips_the_read_and_no_store_skips_the_write(server, cohere_upstream):
    rerank(server.url, DOCS[:4])
    fresh = rerank(server.url, DOCS[:4], cache={"no-cache": True})
    assert fresh.headers["x-cache"] == "miss" and len(cohere_upstream.requests) == 2
    rerank(server.url, DOCS[6:9], cache={"no-store": True})
    again = rerank(server.url, DOCS[6:9])
    assert again.headers["x-cache"] == "miss" and sent_documents(cohere_upstream)[-1] == DOCS[6:9]


def test_cache_control_header_is_honoured(server, cohere_upstream):
    rerank(server.url, DOCS[:4], headers={"cache-control": "no-store"})
    assert rerank(server.url, DOCS[:4], headers={"cache-control": "no-cache"}).headers["x-cache"] == "miss"
    assert len(cohere_upstream.requests) == 2
    assert rerank(server.url, DOCS[:4]).headers["x-cache"] == "hit"  # the no-cache request stored its answer
    assert len(cohere_upstream.requests) == 2


def test_unknown_cache_controls_are_refused_by_name(server):
    response = rerank(server.url, DOCS[:2], cache={"s-maxage": 10})
    assert response.status_code == 400
    assert "cache.s-maxage" in response.json()["message"]


def test_errors_are_never_cached(server, cohere_upstream):
    cohere_upstream.fail_next("500")
    assert rerank(server.url, DOCS[:3]).status_code == 503
    ok = rerank(server.url, DOCS[:3])
    assert ok.status_code == 200 and ok.headers["x-cache"] == "miss"
    assert len(cohere_upstream.requests) == 2


def test_spend_rows_and_metrics_record_hits_partials_and_savings(cohere_upstream, test_db_url):
    with running_proxy(cached_config(cohere_upstream.url, test_db_url)) as server:
        _check_spend_rows_and_metrics(server)


def _check_spend_rows_and_metrics(server) -> None:
    miss = rerank(server.url, DOCS[:4])
    hit = rerank(server.url, DOCS[:4])
    partial = rerank(server.url, DOCS[2:6])
    ids = {r.headers["x-request-id"]: r for r in (miss, hit, partial)}
    with admin(server.url) as client:
        rows = wait_until(lambda: [row for row in client.get("/spend/logs").json() if row["request_id"] in ids]
                          if len(client.get("/spend/logs").json()) >= 3 else None)
        metrics = client.get("/metrics").text
    by_id = {row["request_id"]: row for row in rows}
    assert by_id[miss.headers["x-request-id"]]["cache"] == "miss"
    hit_row = by_id[hit.headers["x-request-id"]]
    assert hit_row["cache"] == "hit" and Decimal(str(hit_row["cost"])) == 0
    assert Decimal(str(hit_row["cost_saved"])) == Decimal(miss.headers["x-response-cost"])
    assert by_id[partial.headers["x-request-id"]]["cache"] == "partial"
    assert 'rerank_proxy_cache_requests_total{requested_model="rerank-english-v3.0",result="hit"} 1.0' in metrics
    assert 'rerank_proxy_cache_requests_total{requested_model="rerank-english-v3.0",result="partial"} 1.0' in metrics
    assert 'rerank_proxy_cache_documents_total{requested_model="rerank-english-v3.0"} 6.0' in metrics
    assert "rerank_proxy_cache_saved_usd_total" in metrics


def test_a_key_with_caching_off_always_goes_upstream(server, cohere_upstream):
    with admin(server.url) as client:
        key = client.post("/key/generate", json={"metadata": {"cache": False}}).json()["key"]
    headers = {"authorization": f"Bearer {key}"}
    for _ in range(2):
        response = rerank(server.url, DOCS[:3], headers=headers)
        assert "x-cache" not in response.headers
    assert len(cohere_upstream.requests) == 2


def test_per_key_scope_keeps_each_keys_entries_apart(cohere_upstream, sqlite_db_url):
    with running_proxy(cached_config(cohere_upstream.url, sqlite_db_url, scope="per_key")) as server:
        with admin(server.url) as client:
            keys = [client.post("/key/generate", json={}).json()["key"] for _ in range(2)]
        first, second = ({"authorization": f"Bearer {k}"} for k in keys)
        rerank(server.url, DOCS[:3], headers=first)
        assert rerank(server.url, DOCS[:3], headers=second).headers["x-cache"] == "miss"
        assert rerank(server.url, DOCS[:3], headers=first).headers["x-cache"] == "hit"
    assert len(cohere_upstream.requests) == 2


def test_a_fallback_answer_is_not_stored_under_the_primary_alias(cohere_upstream, sqlite_db_url):
    models = [
        {"model_name": "primary", "litellm_params": {"model": "cohere/fault-503", "api_key": "test-key",
                                                     "api_base": cohere_upstream.url}},
        {"model_name": "backup", "litellm_params": {"model": "cohere/rerank-english-v3.0", "api_key": "test-key",
                                                    "api_base": cohere_upstream.url}},
    ]
    config = cached_config(cohere_upstream.url, sqlite_db_url)
    config["model_list"] += models
    config["router_settings"]["fallbacks"] = [{"primary": ["backup"]}]
    with running_proxy(config) as server:
        body = {"query": QUERY, "documents": DOCS[:4]}
        first = httpx.post(f"{server.url}/v2/rerank", json={"model": "primary", **body}, headers=AUTH)
        assert first.status_code == 200 and first.headers["x-fallback-used"] == "true"
        again = httpx.post(f"{server.url}/v2/rerank", json={"model": "primary", **body}, headers=AUTH)
        assert [r.body["model"] for r in cohere_upstream.requests] == ["fault-503", "rerank-english-v3.0",
                                                                     "fault-503"]
        assert again.headers["x-cache"] == "hit"  # the backup's per-document scores, under the backup's model
        direct = httpx.post(f"{server.url}/v2/rerank", json={"model": "backup", **body}, headers=AUTH)
        assert direct.headers["x-cache"] == "hit" and len(cohere_upstream.requests) == 3


def test_a_deployment_can_opt_out_of_score_reuse(cohere_upstream, sqlite_db_url):
    config = cached_config(cohere_upstream.url, sqlite_db_url)
    config["model_list"][1]["litellm_params"]["cache_scores"] = False
    with running_proxy(config) as server:
        rerank(server.url, DOCS[:6])
        assert rerank(server.url, DOCS[2:8]).headers["x-cache"] == "miss"
        assert sent_documents(cohere_upstream)[1] == DOCS[2:8]
        assert rerank(server.url, DOCS[2:8]).headers["x-cache"] == "hit"  # whole answers still are
    assert len(cohere_upstream.requests) == 2


# -- the SDK: the same cache code in process ------------------------------------------------------------

def sdk_call(fake, documents: list[str], **kwargs: Any):
    return proxy.rerank("cohere/rerank-english-v3.0", QUERY, documents, api_key=fake.api_key, api_base=fake.url,
                        **kwargs)


def test_the_sdk_reuses_answers_and_scores_of_a_cache_it_is_given(cohere_upstream):
    cache = proxy.Cache(max_size_mb=1)
    first = sdk_call(cohere_upstream, DOCS[:5], cache=cache)
    again = sdk_call(cohere_upstream, DOCS[:5], cache=cache)
    partial = sdk_call(cohere_upstream, DOCS[3:7], cache=cache, top_n=2)
    assert (first.cache, again.cache, partial.cache) == ("miss", "hit", "partial")
    assert again.cost == 0 and again.results == first.results
    assert sent_documents(cohere_upstream) == [DOCS[:5], DOCS[5:7]]
    uncached = sdk_call(cohere_upstream, DOCS[3:7], top_n=2)
    assert uncached.cache is None and uncached.results == partial.results


def test_the_module_level_cache_serves_every_sdk_call(cohere_upstream, monkeypatch):
    monkeypatch.setattr(proxy, "cache", proxy.Cache())
    sdk_call(cohere_upstream, DOCS[:3])
    assert sdk_call(cohere_upstream, DOCS[:3]).cache == "hit"
    assert sdk_call(cohere_upstream, DOCS[:3], cache={"no-cache": True}).cache == "miss"
    assert sdk_call(cohere_upstream, DOCS[:3], cache=False).cache is None
    assert len(cohere_upstream.requests) == 3


async def test_the_router_stores_a_fallback_answer_under_the_fallback(cohere_upstream):
    base = {"api_key": cohere_upstream.api_key, "api_base": cohere_upstream.url}
    router = proxy.Router(model_list=[
        {"model_name": "primary", "litellm_params": {"model": "cohere/fault-503", **base}},
        {"model_name": "backup", "litellm_params": {"model": "cohere/rerank-english-v3.0", **base}},
    ], fallbacks=[{"primary": ["backup"]}], num_retries=0)
    cache = proxy.Cache()
    async with router:
        await router.arerank("primary", QUERY, DOCS[:3], cache=cache)
        again = await router.arerank("primary", QUERY, DOCS[:3], cache=cache)
        direct = await router.arerank("backup", QUERY, DOCS[:3], cache=cache)
    assert [r.body["model"] for r in cohere_upstream.requests] == ["fault-503", "rerank-english-v3.0", "fault-503"]
    assert again.cache == "hit" and direct.cache == "hit"  # scores, then the whole answer, of the backup
