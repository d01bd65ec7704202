"""Jina AI: fixed `/v1/rerank` path on any host, key variables, documents string or {text}, per-token cost."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.jina_ai import FakeJinaAI

MODEL = "jina_ai/jina-reranker-v2-base-multilingual"


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        (None, "https://api.jina.ai/v1/rerank"),
        ("https://jina.internal:8443/some/prefix/", "https://jina.internal:8443/v1/rerank"),
        ("http://127.0.0.1:9000/v1/rerank", "http://127.0.0.1:9000/v1/rerank"),
    ],
)
def test_custom_base_keeps_scheme_and_host_only(api_base, url):
    params = {"api_key": "k"} | ({"api_base": api_base} if api_base else {})
    dep = resolve_deployment(MODEL, params, environ={})
    assert dep.provider.build(make_request("q", ["d"]), dep).url == url


@pytest.mark.parametrize("variable", ["JINA_AI_API_KEY", "JINA_API_KEY"])
def test_key_variables(variable):
    dep = resolve_deployment(MODEL, environ={variable: "jina_key"})
    assert dep.provider.build(make_request("q", ["d"]), dep).headers["authorization"] == "Bearer jina_key"


def test_asks_jina_not_to_return_documents():
    dep = resolve_deployment(MODEL, {"api_key": "k"}, environ={})
    body = dep.provider.build(make_request("q", ["a", {"text": "b"}]), dep).json
    assert body == {"model": "jina-reranker-v2-base-multilingual", "query": "q", "documents": ["a", "b"],
                    "return_documents": False}


def test_parse_accepts_string_or_object_documents_and_reads_total_tokens():
    data = {"model": "m", "usage": {"total_tokens": 42}, "results": [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
        {"index": 0, "relevance_score": 0.1, "document": "a"}]}
    result = REGISTRY["jina_ai"].parse(data, make_request("q", ["a", "b"]))
    assert [(s.index, s.score) for s in result.scores] == [(1, 0.9), (0, 0.1)]
    assert result.usage.total_tokens == 42


def test_error_message_is_read_from_detail():
    assert REGISTRY["jina_ai"].error_message({"detail": "Invalid API key"}) == "Invalid API key"


@pytest.fixture(scope="module")
def fake():
    server = FakeJinaAI().start()
    yield server
    server.stop()


def test_cost_is_tokens_times_price_and_documents_are_echoed_from_the_request(fake):
    fake.reset()
    response = proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, top_n=2, api_key=fake.api_key, api_base=fake.url)
    assert fake.last.body["return_documents"] is False
    assert response.results[0].document.text == CAPITALS[response.results[0].index]
    assert response.cost == pytest.approx(response.meta.billed_units.total_tokens * 5e-8)
    assert response.cost > 0


def test_a_refused_key_is_a_502_for_us_not_a_401_for_the_caller(fake):
    fake.reset()
    with pytest.raises(proxy.UpstreamAuthError) as caught:
        proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, api_key="wrong", api_base=fake.url)
    assert caught.value.status == 502
