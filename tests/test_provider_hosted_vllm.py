"""vLLM: the `vllm/` alias, URL rewriting to `/rerank`, top_n never 0, optional key, passthrough, errors."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY, split_model
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.hosted_vllm import FakeHostedVLLM

MODEL = "hosted_vllm/BAAI/bge-reranker-v2-m3"


def build(api_base, request=None, model=MODEL):
    dep = resolve_deployment(model, {"api_base": api_base}, environ={})
    return dep.provider.build(request or make_request(CAPITAL_QUERY, CAPITALS), dep)


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        ("http://h:8000", "http://h:8000/rerank"),
        ("http://h:8000/", "http://h:8000/rerank"),
        ("http://h:8000/v1", "http://h:8000/v1/rerank"),
        ("http://h:8000/v1/rerank", "http://h:8000/rerank"),
        ("http://h:8000/rerank", "http://h:8000/rerank"),
        ("http://h:8000/v2/rerank", "http://h:8000/v2/rerank"),
    ],
)
def test_url_rules(api_base, url):
    assert build(api_base).url == url


def test_vllm_alias_is_the_same_provider():
    provider, model = split_model("vllm/BAAI/bge-reranker-v2-m3")
    assert provider is REGISTRY["hosted_vllm"] and model == "BAAI/bge-reranker-v2-m3"


def test_top_n_is_sent_only_when_set_and_max_tokens_per_doc_maps_across():
    assert "top_n" not in build("http://h").json
    body = build("http://h", make_request(CAPITAL_QUERY, CAPITALS, top_n=2, max_tokens_per_doc=256)).json
    assert body == {"model": "BAAI/bge-reranker-v2-m3", "query": CAPITAL_QUERY, "documents": CAPITALS,
                    "top_n": 2, "max_tokens_per_doc": 256}


def test_no_key_means_no_authorization_header():
    assert "authorization" not in build("http://h").headers


def test_error_message_is_read_from_vllm_error_body():
    body = {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": None,
                      "code": 404}}
    assert REGISTRY["hosted_vllm"].error_message(body) == "The model `x` does not exist."


@pytest.fixture(scope="module")
def keyless():
    server = FakeHostedVLLM(api_key=None).start()
    yield server
    server.stop()


def test_alias_call_against_a_keyless_server_returns_every_document(keyless, monkeypatch):
    monkeypatch.delenv("HOSTED_VLLM_API_KEY", raising=False)
    keyless.reset()
    response = proxy.rerank("vllm/BAAI/bge-reranker-v2-m3", CAPITAL_QUERY, CAPITALS,
                            api_base=keyless.url + "/v1/rerank", truncate_prompt_tokens=128)
    assert keyless.last.path == "/rerank"
    assert keyless.last.body["truncate_prompt_tokens"] == 128
    assert "authorization" not in keyless.last.headers
    assert sorted(r.index for r in response.results) == [0, 1, 2, 3]
    assert response.meta.billed_units.total_tokens > 0
