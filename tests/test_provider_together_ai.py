"""Together AI: default endpoint, key variables, object documents with rank_fields, per-token cost."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.together_ai import FakeTogetherAI

MODEL = "together_ai/Salesforce/Llama-Rank-V1"
OBJECTS = [{"title": "Nevada", "text": CAPITALS[0]}, {"title": "USA", "text": CAPITALS[2]}]


@pytest.mark.parametrize("variable", ["TOGETHERAI_API_KEY", "TOGETHER_API_KEY"])
def test_default_endpoint_and_both_key_variables(variable):
    dep = resolve_deployment(MODEL, environ={variable: "tg-key"})
    upstream = dep.provider.build(make_request("q", ["d"]), dep)
    assert upstream.url == "https://api.together.ai/v1/rerank"
    assert upstream.headers["authorization"] == "Bearer tg-key"


def test_object_documents_without_rank_fields_are_sent_as_their_text():
    dep = resolve_deployment(MODEL, {"api_key": "k"}, environ={})
    body = dep.provider.build(make_request("q", OBJECTS), dep).json
    assert body["documents"] == [CAPITALS[0], CAPITALS[2]]
    assert "rank_fields" not in body


@pytest.fixture(scope="module")
def fake():
    server = FakeTogetherAI().start()
    yield server
    server.stop()


def call(fake, documents, **kwargs):
    return proxy.rerank(MODEL, CAPITAL_QUERY, documents, api_key=fake.api_key, api_base=f"{fake.url}/v1",
                        **kwargs)


def test_object_documents_and_rank_fields_go_upstream_as_given_and_echo_whole(fake):
    fake.reset()
    response = call(fake, OBJECTS, rank_fields=["title", "text"])
    assert fake.last.body["documents"] == OBJECTS
    assert fake.last.body["rank_fields"] == ["title", "text"]
    assert response.results[0].index == 1
    assert response.results[0].document.model_dump(exclude_none=True) == OBJECTS[1]


def test_cost_is_the_reported_tokens_times_the_token_price(fake):
    fake.reset()
    response = call(fake, CAPITALS)
    tokens = response.meta.billed_units.total_tokens
    assert tokens and response.cost == pytest.approx(tokens * 1e-7)


def test_error_message_is_read_from_the_openai_style_body(fake):
    fake.reset()
    fake.fail_next("400")
    with pytest.raises(proxy.UpstreamRejectedError, match="HTTP 400: scripted failure 400$"):
        call(fake, CAPITALS)
