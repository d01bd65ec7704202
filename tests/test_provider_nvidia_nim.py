"""NVIDIA NIM: hosted and self-hosted routes, model id spelling, top_k, sigmoid scores with the raw logit."""

from __future__ import annotations

import math

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.providers.nvidia_nim import sigmoid
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.base import ranked
from tests.fakes.nvidia_nim import FakeNvidiaNim

nim = REGISTRY["nvidia_nim"]


def build(model: str, api_base: str | None = None, api_key: str | None = "k", **request):
    params = {"api_key": api_key, "api_base": api_base}
    deployment = resolve_deployment(f"nvidia_nim/{model}", params, environ={})
    return nim.build(make_request("q", ["a", "b"], **request), deployment)


@pytest.mark.parametrize(("model", "api_base", "url"), [
    ("nvidia/llama-3_2-nv-rerankqa-1b-v2", None,
     "https://ai.api.nvidia.com/v1/retrieval/nvidia/llama-3_2-nv-rerankqa-1b-v2/reranking"),
    ("nvidia/llama-3.2-nv-rerankqa-1b-v2", "https://ai.api.nvidia.com/v1/",
     "https://ai.api.nvidia.com/v1/retrieval/nvidia/llama-3_2-nv-rerankqa-1b-v2/reranking"),
    ("nvidia/x", "https://gw/v1/retrieval/nvidia/x/reranking", "https://gw/v1/retrieval/nvidia/x/reranking"),
    ("ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2", "http://nim:8000", "http://nim:8000/v1/ranking"),
    ("ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2", "http://nim:8000/v1", "http://nim:8000/v1/ranking"),
    ("nvidia/llama-3.2-nv-rerankqa-1b-v2", "http://nim:8000/v1/ranking", "http://nim:8000/v1/ranking"),
])
def test_url_rules(model, api_base, url):
    assert build(model, api_base).url == url


def test_hosted_body_uses_dotted_model_ids_and_top_k():
    body = build("nvidia/llama-3_2-nv-rerankqa-1b-v2", top_n=1).json
    assert body == {"model": "nvidia/llama-3.2-nv-rerankqa-1b-v2", "query": {"text": "q"},
                    "passages": [{"text": "a"}, {"text": "b"}], "top_k": 1}


def test_self_hosted_body_strips_the_route_prefix_and_never_sends_top_k():
    body = build("ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2", "http://nim:8000", top_n=1).json
    assert body["model"] == "nvidia/llama-3.2-nv-rerankqa-1b-v2"
    assert "top_k" not in body


def test_the_hosted_route_needs_a_key_a_self_hosted_nim_does_not():
    with pytest.raises(proxy.ConfigurationError, match="NVIDIA_NIM_API_KEY"):
        build("nvidia/llama-3_2-nv-rerankqa-1b-v2", api_key=None)
    assert "authorization" not in build("ranking/nvidia/x", "http://nim:8000", api_key=None).headers


def test_sigmoid_is_stable_at_the_extremes():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-1000.0) == 0.0
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)))


@pytest.fixture(scope="module")
def fake():
    fake = FakeNvidiaNim().start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake):
    fake.reset()
    fake.api_key = "test-key"
    return fake


def test_scores_are_the_sigmoid_of_the_logit_which_each_result_keeps(upstream):
    response = proxy.rerank("nvidia_nim/nvidia/nv-rerankqa-mistral-4b-v3", CAPITAL_QUERY, CAPITALS,
                            api_key=upstream.api_key, api_base=upstream.url)
    logits = {r["index"]: r["logit"] for r in response.model_dump()["results"]}
    assert any(v < 0 for v in logits.values()) and any(v > 0 for v in logits.values())
    for result in response.results:
        assert result.relevance_score == pytest.approx(1 / (1 + math.exp(-logits[result.index])))
        assert 0 < result.relevance_score < 1
    assert response.meta.billed_units.total_tokens > 0


def test_self_hosted_nim_without_a_key_gets_top_n_applied_by_us(upstream):
    upstream.api_key = None
    response = proxy.rerank("nvidia_nim/ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2", CAPITAL_QUERY, CAPITALS,
                            top_n=2, api_base=upstream.url)
    assert upstream.last.path == "/v1/ranking"
    assert "top_k" not in upstream.last.body and "authorization" not in upstream.last.headers
    assert [r.index for r in response.results] == [i for i, _ in ranked(CAPITAL_QUERY, CAPITALS, 2)]
