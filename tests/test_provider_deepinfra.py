"""DeepInfra: URL rules, parallel arrays, input-order scores that we sort, token billing, error shapes."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.base import ranked
from tests.fakes.deepinfra import FakeDeepInfra

deepinfra = REGISTRY["deepinfra"]


def url(api_base: str | None) -> str:
    params = {"api_key": "k", "api_base": api_base}
    deployment = resolve_deployment("deepinfra/Qwen/Qwen3-Reranker-8B", params, environ={})
    return deepinfra.build(make_request("q", ["a"]), deployment).url


@pytest.mark.parametrize(("api_base", "expected"), [
    (None, "https://api.deepinfra.com/v1/inference/Qwen/Qwen3-Reranker-8B"),
    ("https://api.deepinfra.com/v1/openai", "https://api.deepinfra.com/v1/inference/Qwen/Qwen3-Reranker-8B"),
    ("https://api.deepinfra.com/v1/openai/", "https://api.deepinfra.com/v1/inference/Qwen/Qwen3-Reranker-8B"),
    ("http://gw/v1", "http://gw/v1/inference/Qwen/Qwen3-Reranker-8B"),
    ("http://gw/v1/inference", "http://gw/v1/inference/Qwen/Qwen3-Reranker-8B"),
])
def test_url_rules(api_base, expected):
    assert url(api_base) == expected


@pytest.fixture(scope="module")
def fake():
    fake = FakeDeepInfra().start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake):
    fake.reset()
    return fake


def call(fake, **kwargs):
    return proxy.rerank("deepinfra/Qwen/Qwen3-Reranker-0.6B", CAPITAL_QUERY, CAPITALS, api_key=fake.api_key,
                        api_base=fake.url, **kwargs)


def test_scores_in_input_order_are_sorted_and_cut_by_us(upstream):
    response = call(upstream, top_n=2)
    assert "top_n" not in upstream.last.body
    assert upstream.last.body["queries"] == [CAPITAL_QUERY] * len(CAPITALS)
    assert [r.index for r in response.results] == [i for i, _ in ranked(CAPITAL_QUERY, CAPITALS, 2)]
    assert response.results[0].relevance_score > response.results[1].relevance_score


def test_parse_keeps_input_positions_as_indices():
    parsed = deepinfra.parse({"scores": [0.1, 0.9, 0.5], "input_tokens": 30, "request_id": "r1"},
                             make_request("q", ["a", "b", "c"]))
    assert [(s.index, s.score) for s in parsed.scores] == [(0, 0.1), (1, 0.9), (2, 0.5)]
    assert (parsed.usage.total_tokens, parsed.upstream_id) == (30, "r1")


def test_a_score_count_that_does_not_match_the_documents_is_malformed():
    with pytest.raises(proxy.UpstreamMalformedError, match="2 scores for 3 documents"):
        deepinfra.parse({"scores": [0.1, 0.2]}, make_request("q", ["a", "b", "c"]))


def test_cost_is_input_tokens_times_the_token_price(upstream):
    response = call(upstream)
    tokens = response.meta.billed_units.total_tokens
    assert tokens == sum(len(CAPITAL_QUERY.split()) + len(d.split()) for d in CAPITALS)
    assert response.cost == pytest.approx(tokens * 1e-8)


def test_instruction_is_passed_through(upstream):
    call(upstream, provider_params={"instruction": "Find the capital"})
    assert upstream.last.body["instruction"] == "Find the capital"


@pytest.mark.parametrize(("body", "message"), [
    ({"detail": {"error": "Model is overloaded"}}, "Model is overloaded"),
    ({"detail": "Invalid API key"}, "Invalid API key"),
])
def test_both_error_shapes_give_their_message(body, message):
    assert deepinfra.error_message(body) == message
