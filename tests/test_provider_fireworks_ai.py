"""Fireworks AI: URL rules, model id forms (never double-prefixed), `results` fallback, per-token price."""

from __future__ import annotations

from decimal import Decimal

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.pricing import price_for
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.fireworks_ai import FakeFireworksAI

LONG = "accounts/fireworks/models/qwen3-reranker-8b"


def build(model=f"fireworks_ai/{LONG}", request=None, **params):
    dep = resolve_deployment(model, {"api_key": "k", **params}, environ={})
    return dep.provider.build(request or make_request(CAPITAL_QUERY, CAPITALS), dep)


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        (None, "https://api.fireworks.ai/inference/v1/rerank"),
        ("https://gw.example/custom/rerank", "https://gw.example/custom/rerank"),
        ("https://gw.example/v1", "https://gw.example/v1/rerank"),
        ("https://gw.example/inference/v1/", "https://gw.example/inference/v1/rerank"),
        ("https://gw.example", "https://gw.example/inference/v1/rerank"),
    ],
)
def test_url_rules(api_base, url):
    assert build(**({"api_base": api_base} if api_base else {})).url == url


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        (LONG, LONG),
        ("fireworks/qwen3-reranker-8b", "fireworks/qwen3-reranker-8b"),
        ("qwen3-reranker-8b", "fireworks/qwen3-reranker-8b"),
        ("accounts/my-team/models/my-reranker", "accounts/my-team/models/my-reranker"),
    ],
)
def test_model_ids_are_sent_as_written_and_bare_names_get_the_fireworks_prefix(model, sent):
    assert build(f"fireworks_ai/{model}").json["model"] == sent


@pytest.mark.parametrize("model", [LONG, "fireworks/qwen3-reranker-8b", "qwen3-reranker-8b"])
def test_every_id_form_of_the_8b_model_is_priced_per_token(model):
    dep = resolve_deployment(f"fireworks_ai/{model}", {"api_key": "k"}, environ={})
    assert price_for(dep).per_token == Decimal("0.0000002")


def test_task_is_passed_through():
    assert build(task="Given a question, find passages that answer it").json["task"].startswith("Given")


@pytest.mark.parametrize("variable", ["FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY"])
def test_key_variables(variable):
    dep = resolve_deployment(f"fireworks_ai/{LONG}", environ={variable: "fw-key"})
    assert dep.provider.build(make_request("q", ["d"]), dep).headers["authorization"] == "Bearer fw-key"


def test_parse_falls_back_to_a_results_list():
    data = {"object": "list", "results": [{"index": 0, "relevance_score": 0.3, "document": "a"}],
            "usage": {"prompt_tokens": 9, "total_tokens": 9}}
    result = REGISTRY["fireworks_ai"].parse(data, make_request("q", ["a"]))
    assert [(s.index, s.score) for s in result.scores] == [(0, 0.3)]
    assert result.usage.total_tokens == 9


def test_error_message_is_read_from_the_error_object():
    body = {"error": {"object": "error", "type": "invalid_request_error", "message": "Model not found"}}
    assert REGISTRY["fireworks_ai"].error_message(body) == "Model not found"


@pytest.fixture(scope="module")
def fake():
    server = FakeFireworksAI().start()
    yield server
    server.stop()


def test_a_results_answer_is_read_like_a_data_answer(fake):
    fake.reset()
    fake.answer_with_results = True
    try:
        response = proxy.rerank("fireworks_ai/qwen3-reranker-8b", CAPITAL_QUERY, CAPITALS, top_n=2,
                                api_key=fake.api_key, api_base=fake.url)
    finally:
        fake.answer_with_results = False
    assert fake.last.body["model"] == "fireworks/qwen3-reranker-8b"
    assert len(response.results) == 2
    assert response.cost == pytest.approx(response.meta.billed_units.total_tokens * 2e-7)
