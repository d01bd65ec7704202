"""Infinity: api_base required, key optional, `raw_scores` passed through, null documents and usage parsed."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.infinity import FakeInfinity

MODEL = "infinity/mixedbread-ai/mxbai-rerank-xsmall-v1"


def test_parse_reads_results_with_null_documents_and_usage():
    data = {"object": "rerank", "id": "infinity-1", "model": "m", "created": 1,
            "results": [{"relevance_score": 0.8, "index": 1, "document": None},
                        {"relevance_score": 0.2, "index": 0, "document": None}],
            "usage": {"prompt_tokens": 30, "total_tokens": 30}}
    result = REGISTRY["infinity"].parse(data, make_request("q", ["a", "b"]))
    assert [(s.index, s.score) for s in result.scores] == [(1, 0.8), (0, 0.2)]
    assert (result.usage.input_tokens, result.usage.total_tokens) == (30, 30)
    assert result.upstream_id == "infinity-1"


def test_base_from_the_environment_and_rerank_appended_once():
    dep = resolve_deployment(MODEL, environ={"INFINITY_API_BASE": "http://infinity:7997/v1/"})
    assert dep.missing_env is None
    assert dep.provider.build(make_request("q", ["d"]), dep).url == "http://infinity:7997/v1/rerank"


def test_no_api_base_is_a_configuration_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("INFINITY_API_BASE", raising=False)
    with pytest.raises(proxy.ConfigurationError, match="INFINITY_API_BASE"):
        proxy.rerank(MODEL, "q", ["d"])


def test_error_message_is_read_from_the_openai_style_body():
    body = {"error": {"message": "documents must not be empty", "type": "BadRequestError", "param": None,
                      "code": 400}}
    assert REGISTRY["infinity"].error_message(body) == "documents must not be empty"


@pytest.fixture(scope="module")
def keyless():
    server = FakeInfinity(api_key=None).start()
    yield server
    server.stop()


def test_a_server_without_a_key_is_called_without_authorization(keyless, monkeypatch):
    monkeypatch.delenv("INFINITY_API_KEY", raising=False)
    keyless.reset()
    response = proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, api_base=keyless.url)
    assert "authorization" not in keyless.last.headers
    assert len(response.results) == len(CAPITALS)
    assert response.meta.billed_units.total_tokens > 0


def test_raw_scores_is_passed_through(keyless):
    keyless.reset()
    proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, api_base=keyless.url, provider_params={"raw_scores": True})
    assert keyless.last.body["raw_scores"] is True
    assert keyless.last.body["return_documents"] is False
