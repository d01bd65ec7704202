"""The rest of Cohere's API through the official SDK (cohere 7.x, v1 and v2 clients): the model list, and the
v2 rerank options `priority` and `relevant_spans` forwarded to Cohere upstreams exactly as sent."""

from __future__ import annotations

import asyncio

import cohere
import httpx
import pytest

from tests.serving import config_for, running_proxy

NO_RETRY = {"max_retries": 0}


@pytest.fixture(scope="module")
def proxy_url(fake_cohere, tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "spend.db"
    config = config_for(fake_cohere.url, f"sqlite:///{db}", router_settings={"model_group_alias": {
        "rerank": "rerank-english-v3.0", "legacy": {"model": "local-bm25", "hidden": True}}})
    with running_proxy(config) as server:
        yield server.url


@pytest.fixture(scope="module")
def limited_key(admin_client):
    return admin_client.post("/key/generate", json={"models": ["local-bm25"]}).json()["key"]


def test_the_v2_and_v1_clients_list_the_aliases_a_key_may_use(proxy_url, admin_client, limited_key):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    assert [m.name for m in v2.models.list().models] == ["local-bm25", "rerank-english-v3.0", "rerank"]
    assert all(m.endpoints == ["rerank"] for m in v2.models.list().models)
    v1 = cohere.Client(base_url=proxy_url, api_key=limited_key)
    assert [m.name for m in v1.models.list().models] == ["local-bm25"]

    async def listed() -> list[str]:
        async with cohere.AsyncClientV2(base_url=proxy_url, api_key=limited_key) as client:
            return [m.name for m in (await client.models.list()).models]

    assert asyncio.run(listed()) == ["local-bm25"]
    data = admin_client.get("/models").json()["data"]  # LiteLLM's (OpenAI's) shape, beside Cohere's
    assert [(m["id"], m["object"]) for m in data] == [("local-bm25", "model"), ("rerank-english-v3.0", "model"),
                                                      ("rerank", "model")]


def test_the_endpoint_filter_and_pages_follow_cohere(proxy_url, admin_client):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    assert v2.models.list(endpoint="chat").models == []
    assert len(v2.models.list(endpoint="rerank").models) == 3
    assert v2.models.list(endpoint="rerank", default_only=True).models == []  # several aliases: none is default
    first = v2.models.list(page_size=2)
    assert [m.name for m in first.models] == ["local-bm25", "rerank-english-v3.0"]
    rest = v2.models.list(page_size=2, page_token=first.next_page_token)
    assert [m.name for m in rest.models] == ["rerank"] and rest.next_page_token is None
    assert admin_client.get("/v1/models", params={"page_token": "nope"}).status_code == 400
    assert admin_client.get("/v1/models", params={"page_size": 0}).status_code == 422


def test_one_model_is_found_by_name_and_others_are_404(proxy_url, limited_key):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key=limited_key)
    assert v2.models.get("local-bm25").endpoints == ["rerank"]
    for name in ("rerank-english-v3.0", "legacy", "nope"):  # not allowed, hidden, unknown
        with pytest.raises(cohere.errors.NotFoundError):
            v2.models.get(name, request_options=NO_RETRY)


def test_the_not_found_message_points_at_a_list_that_has_the_model(proxy_url, limited_key):
    answer = httpx.post(f"{proxy_url}/v2/rerank", headers={"authorization": "Bearer sk-master-test"},
                        json={"model": "nope", "query": "q", "documents": ["a"]})
    assert answer.status_code == 404 and "GET /v1/models" in answer.json()["message"]


SPANS = {"mode": "enabled", "threshold": 0.5, "max_spans": 2}
DOCS = ["Washington is the capital of the United States.", "Carson City is the capital of Nevada."]


def test_priority_and_relevant_spans_reach_cohere_exactly_as_sent_and_spans_come_back(proxy_url, cohere_upstream):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    response = v2.rerank(model="rerank-english-v3.0", query="United States capital", documents=DOCS,
                         priority=3, relevant_spans=cohere.RerankRelevantSpans(**SPANS), top_n=2)
    sent = cohere_upstream.last.body
    assert (sent["priority"], sent["relevant_spans"]) == (3, SPANS)
    best = response.results[0]
    assert best.index == 0
    assert [(s.start, s.end, s.score) for s in best.relevant_spans] == [(18, 25, 0.7), (33, 39, 0.6)]
    assert (DOCS[0][18:25], DOCS[0][33:39]) == ("capital", "United")
    assert response.meta.warnings is None  # Cohere takes both: nothing dropped


def test_spans_are_not_asked_for_or_returned_unless_the_caller_asks(proxy_url, cohere_upstream):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    response = v2.rerank(model="rerank-english-v3.0", query="United States capital", documents=DOCS)
    assert "relevant_spans" not in cohere_upstream.last.body and "priority" not in cohere_upstream.last.body
    assert all(r.relevant_spans is None for r in response.results)


def test_an_option_the_provider_lacks_is_dropped_and_named_in_meta_warnings(proxy_url):
    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    response = v2.rerank(model="local-bm25", query="United States capital", documents=DOCS, priority=1,
                         relevant_spans=cohere.RerankRelevantSpans(**SPANS), max_tokens_per_doc=100)
    assert response.meta.warnings == [
        f"'{name}' is not supported by provider 'local' and was ignored"
        for name in ("max_tokens_per_doc", "priority", "relevant_spans")]
    assert all(r.relevant_spans is None for r in response.results)
    plain = v2.rerank(model="local-bm25", query="United States capital", documents=DOCS)
    assert plain.meta.warnings is None


def test_v1_only_options_on_a_v2_cohere_upstream_are_named_too(proxy_url, cohere_upstream):
    v1 = cohere.Client(base_url=proxy_url, api_key="sk-master-test")
    response = v1.rerank(model="rerank-english-v3.0", query="capital", documents=DOCS, max_chunks_per_doc=2)
    assert cohere_upstream.last.path == "/v1/rerank" and cohere_upstream.last.body["max_chunks_per_doc"] == 2
    assert response.meta.warnings is None
    answer = httpx.post(f"{proxy_url}/v1/rerank", headers={"authorization": "Bearer sk-master-test"},
                        json={"model": "rerank-english-v3.0", "query": "capital", "documents": DOCS,
                              "max_chunks_per_doc": 2, "priority": 1})
    assert cohere_upstream.last.path == "/v1/rerank" and "priority" not in cohere_upstream.last.body
    assert answer.json()["meta"]["warnings"] == ["'priority' is not supported by provider 'cohere' and was ignored"]


def test_413_and_502_reach_the_sdk_as_its_generic_api_error_with_status_and_message(proxy_url, cohere_upstream):
    from cohere.core.api_error import ApiError

    v2 = cohere.ClientV2(base_url=proxy_url, api_key="sk-master-test")
    with pytest.raises(ApiError) as too_large:  # max_request_size_mb is 10 by default
        v2.rerank(model="local-bm25", query="q", documents=["x" * 1_000_000] * 11, request_options=NO_RETRY)
    cohere_upstream.fail_next("401", times=10)  # the upstream refuses our credentials
    with pytest.raises(ApiError) as refused:
        v2.rerank(model="rerank-english-v3.0", query="q", documents=["a"], request_options=NO_RETRY)
    for caught, status in ((too_large, 413), (refused, 502)):
        assert type(caught.value) is ApiError  # no typed subclass for these in cohere 7.x
        assert caught.value.status_code == status and caught.value.body["message"]


def test_litellms_body_options_reach_a_provider_that_takes_them_and_are_named_where_dropped(tmp_path):
    from tests.fakes.hosted_vllm import FakeHostedVLLM

    vllm = FakeHostedVLLM().start()
    try:
        config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=[{"model_name": "vllm",
                            "litellm_params": {"model": "hosted_vllm/BAAI/bge-reranker-v2-m3", "api_base": vllm.url,
                                               "api_key": vllm.api_key}}])
        options = {"truncate_prompt_tokens": 64, "truncation_side": "left", "instruction": "Find capitals"}
        body = {"query": "capital", "documents": DOCS, **options}
        with running_proxy(config) as server:
            auth = {"authorization": "Bearer sk-master-test"}
            served = httpx.post(f"{server.url}/v2/rerank", headers=auth, json={"model": "vllm", **body}).json()
            local = httpx.post(f"{server.url}/v2/rerank", headers=auth, json={"model": "local-bm25", **body}).json()
    finally:
        vllm.stop()
    sent = vllm.last.body
    assert (sent["truncate_prompt_tokens"], sent["truncation_side"]) == (64, "left") and "instruction" not in sent
    assert served["meta"]["warnings"] == ["'instruction' is not supported by provider 'hosted_vllm' and was ignored"]
    assert len(local["meta"]["warnings"]) == 3
