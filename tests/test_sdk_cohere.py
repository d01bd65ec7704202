"""The SDK against a fake Cohere upstream: request bodies, normalisation, cost and the error table."""

from __future__ import annotations

import asyncio

import pytest

import proxy
from proxy import arerank, rerank
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.base import ranked
from tests.fakes.server import dropping_server, free_port


def call(upstream, model="rerank-english-v3.0", **kwargs):
    kwargs.setdefault("api_key", upstream.api_key)
    return rerank(f"cohere/{model}", CAPITAL_QUERY, CAPITALS, api_base=upstream.url, **kwargs)


def test_v2_body_and_cohere_shaped_response_with_cost(cohere_upstream):
    resp = call(cohere_upstream, top_n=3)
    sent = cohere_upstream.last
    assert sent.path == "/v2/rerank"
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body == {"model": "rerank-english-v3.0", "query": CAPITAL_QUERY, "documents": CAPITALS,
                         "top_n": 3}
    assert [(r.index, r.relevance_score) for r in resp.results] == ranked(CAPITAL_QUERY, CAPITALS, 3)
    assert resp.results[0].document.text == CAPITALS[resp.results[0].index]
    scores = [r.relevance_score for r in resp.results]
    assert scores == sorted(scores, reverse=True)
    assert resp.meta.billed_units.search_units == 1
    assert resp.cost == pytest.approx(0.002)


def test_v1_only_fields_go_to_the_v1_endpoint_and_objects_echo_whole(cohere_upstream):
    docs = [{"title": "Nevada", "body": CAPITALS[0]}, {"title": "USA", "body": CAPITALS[2]}]
    resp = rerank("cohere/rerank-v3.5", CAPITAL_QUERY, docs, rank_fields=["title", "body"],
                  max_chunks_per_doc=2, api_key=cohere_upstream.api_key, api_base=cohere_upstream.url)
    sent = cohere_upstream.last
    assert sent.path == "/v1/rerank"
    assert sent.body == {"model": "rerank-v3.5", "query": CAPITAL_QUERY, "documents": docs,
                         "rank_fields": ["title", "body"], "max_chunks_per_doc": 2}
    assert resp.results[0].index == 1
    assert resp.results[0].document.model_dump(exclude_none=True) == docs[1]
    assert resp.meta.api_version.version == "1"


def test_explicit_endpoint_in_api_base_is_used_as_is(cohere_upstream):
    rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_key="test-key",
           api_base=cohere_upstream.url + "/v1/rerank")
    assert cohere_upstream.last.path == "/v1/rerank"
    assert "rank_fields" not in cohere_upstream.last.body


def test_key_is_read_from_the_environment(cohere_upstream, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "test-key")
    resp = rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_base=cohere_upstream.url)
    assert resp.results and cohere_upstream.last.headers["authorization"] == "Bearer test-key"


def test_missing_key_is_a_configuration_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    with pytest.raises(proxy.ConfigurationError, match="COHERE_API_KEY"):
        rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_base="http://127.0.0.1:9")


async def test_async_and_sync_give_the_same_answer(cohere_upstream):
    sync = await asyncio.to_thread(call, cohere_upstream, top_n=2)
    asyn = await arerank("cohere/rerank-english-v3.0", CAPITAL_QUERY, CAPITALS, top_n=2, api_key="test-key",
                         api_base=cohere_upstream.url)
    assert [(r.index, r.relevance_score) for r in sync.results] == \
        [(r.index, r.relevance_score) for r in asyn.results]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("400", proxy.UpstreamRejectedError, 400),
        ("401", proxy.UpstreamAuthError, 502),
        ("403", proxy.UpstreamAuthError, 502),
        ("429", proxy.UpstreamRateLimitError, 429),
        ("500", proxy.UpstreamUnavailableError, 503),
        ("503", proxy.UpstreamUnavailableError, 503),
        ("malformed", proxy.UpstreamMalformedError, 502),
        ("notjson", proxy.UpstreamMalformedError, 502),
    ],
)
def test_upstream_failures_become_typed_errors(cohere_upstream, fault, error, status):
    cohere_upstream.fail_next(fault)
    with pytest.raises(error) as caught:
        call(cohere_upstream)
    assert caught.value.status == status
    assert caught.value.retryable is (status != 400)
    assert caught.value.provider == "cohere"


def test_rate_limit_carries_retry_after(cohere_upstream):
    cohere_upstream.fail_next("429")
    with pytest.raises(proxy.UpstreamRateLimitError) as caught:
        call(cohere_upstream)
    assert caught.value.retry_after == 1.0


def test_wrong_key_upstream_is_502_not_401(cohere_upstream):
    with pytest.raises(proxy.UpstreamAuthError) as caught:
        call(cohere_upstream, api_key="wrong")
    assert caught.value.status == 502 and "invalid api token" in caught.value.message


def test_timeout_is_504(cohere_upstream):
    cohere_upstream.fail_next("timeout")
    with pytest.raises(proxy.UpstreamTimeoutError) as caught:
        call(cohere_upstream, timeout=0.3)
    assert caught.value.status == 504


def test_connection_refused_is_503():
    with pytest.raises(proxy.UpstreamUnavailableError) as caught:
        rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_key="k",
               api_base=f"http://127.0.0.1:{free_port()}")
    assert caught.value.status == 503


def test_dropped_connection_is_503():
    with dropping_server() as url, pytest.raises(proxy.UpstreamUnavailableError):
        rerank("cohere/rerank-v3.5", CAPITAL_QUERY, CAPITALS, api_key="k", api_base=url)


def test_more_documents_than_one_call_takes_are_split_and_merged(cohere_upstream):
    documents = [f"filler document number {i}" for i in range(2500)]
    documents[1700] = CAPITALS[2]
    documents[40] = CAPITALS[0]
    resp = rerank("cohere/rerank-v3.5", CAPITAL_QUERY, documents, top_n=5, api_key="test-key",
                  api_base=cohere_upstream.url)
    sizes = sorted(len(r.body["documents"]) for r in cohere_upstream.requests)
    assert sizes == [500, 1000, 1000]
    assert all("top_n" not in r.body for r in cohere_upstream.requests)
    assert resp.results[0].index == 1700 and resp.results[0].document.text == CAPITALS[2]
    assert len(resp.results) == 5
    assert resp.meta.billed_units.search_units == 3
    assert resp.cost == pytest.approx(0.006)
