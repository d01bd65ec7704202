"""Voyage AI: top_n → top_k, the MongoDB host for `al-` keys, URL rules, truncation, 1,000 documents/call."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.voyage import FakeVoyage

MODEL = "voyage/rerank-2.5"


def build(request=None, **params):
    dep = resolve_deployment(MODEL, {"api_key": "pa-key", **params}, environ={})
    return dep.provider.build(request or make_request(CAPITAL_QUERY, CAPITALS), dep)


def test_top_n_is_sent_as_top_k():
    body = build(make_request(CAPITAL_QUERY, CAPITALS, top_n=3)).json
    assert body["top_k"] == 3 and "top_n" not in body


@pytest.mark.parametrize(
    ("params", "url"),
    [
        ({}, "https://api.voyageai.com/v1/rerank"),
        ({"api_key": "al-atlas-key"}, "https://ai.mongodb.com/v1/rerank"),
        ({"api_key": "al-atlas-key", "api_base": "https://gw.example/v1"}, "https://gw.example/v1/rerank"),
        ({"api_base": "https://gw.example"}, "https://gw.example/v1/rerank"),
        ({"api_base": "https://gw.example/voyage/v1/rerank"}, "https://gw.example/voyage/v1/rerank"),
    ],
)
def test_url_rules_and_the_mongodb_host_for_al_keys(params, url):
    assert build(**params).url == url


def test_base_and_key_from_the_environment():
    dep = resolve_deployment(MODEL, environ={"VOYAGE_API_KEY": "pa-env", "VOYAGE_API_BASE": "https://v.example/v1"})
    upstream = dep.provider.build(make_request("q", ["d"]), dep)
    assert upstream.url == "https://v.example/v1/rerank"
    assert upstream.headers["authorization"] == "Bearer pa-env"


def test_truncation_is_passed_through_from_the_deployment_or_the_request():
    assert build(truncation=False).json["truncation"] is False
    request = make_request(CAPITAL_QUERY, CAPITALS, params={"truncation": True})
    assert build(request, truncation=False).json["truncation"] is True
    assert "truncation" not in build().json


def test_at_most_1000_documents_a_call():
    assert REGISTRY["voyage"].max_documents_per_call == 1000


@pytest.fixture(scope="module")
def fake():
    server = FakeVoyage().start()
    yield server
    server.stop()


def test_a_refused_key_reports_voyages_detail(fake):
    fake.reset()
    with pytest.raises(proxy.UpstreamAuthError, match="Provided API key is invalid"):
        proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, api_key="pa-wrong", api_base=fake.url + "/v1")


def test_split_calls_add_their_tokens_and_cost(fake):
    fake.reset()
    documents = [f"filler document number {i}" for i in range(1001)]
    documents[1000] = CAPITALS[2]
    response = proxy.rerank(MODEL, CAPITAL_QUERY, documents, top_n=1, api_key=fake.api_key, api_base=fake.url)
    assert sorted(len(r.body["documents"]) for r in fake.requests) == [1, 1000]
    assert all("top_k" not in r.body for r in fake.requests)
    assert response.results[0].index == 1000
    assert response.meta.billed_units.total_tokens > 0
    assert response.cost == pytest.approx(response.meta.billed_units.total_tokens * 5e-8)
