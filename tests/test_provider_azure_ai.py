"""Azure AI (Cohere on Azure): URL rules pick the endpoint and the Cohere API version, the body follows it."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.azure_ai import FakeAzureAI
from tests.fakes.base import ranked

OBJECTS = [{"title": "Nevada", "body": CAPITALS[0]}, {"title": "USA", "body": CAPITALS[2]}]


def build(api_base, request=None, model="azure_ai/cohere-rerank-v3.5"):
    dep = resolve_deployment(model, {"api_key": "k", "api_base": api_base}, environ={})
    return dep.provider.build(request or make_request(CAPITAL_QUERY, CAPITALS), dep)


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        ("https://e.eastus.models.ai.azure.com", "https://e.eastus.models.ai.azure.com/v1/rerank"),
        ("https://e.eastus.models.ai.azure.com/", "https://e.eastus.models.ai.azure.com/v1/rerank"),
        ("https://e.inference.ai.azure.com/v1", "https://e.inference.ai.azure.com/v1/rerank"),
        ("https://e.inference.ai.azure.com/v2", "https://e.inference.ai.azure.com/v2/rerank"),
        ("https://h/v1/rerank", "https://h/v1/rerank"),
        ("https://h/v2/rerank", "https://h/v2/rerank"),
        ("https://r.services.ai.azure.com/providers/cohere/v2",
         "https://r.services.ai.azure.com/providers/cohere/v2/rerank"),
        ("https://r.services.ai.azure.com/providers/cohere/v2/rerank",
         "https://r.services.ai.azure.com/providers/cohere/v2/rerank"),
    ],
)
def test_url_rules(api_base, url):
    assert build(api_base).url == url


def test_v1_url_gets_cohere_v1_body_with_objects_and_rank_fields():
    request = make_request(CAPITAL_QUERY, OBJECTS, rank_fields=["title", "body"], max_chunks_per_doc=3,
                           top_n=1)
    sent = build("https://e.models.ai.azure.com", request).json
    assert sent == {"model": "cohere-rerank-v3.5", "query": CAPITAL_QUERY, "documents": OBJECTS,
                    "rank_fields": ["title", "body"], "max_chunks_per_doc": 3, "top_n": 1}


@pytest.mark.parametrize("api_base", ["https://h/v2", "https://r.services.ai.azure.com/providers/cohere/v2"])
def test_v2_url_gets_cohere_v2_body_with_texts(api_base):
    request = make_request(CAPITAL_QUERY, OBJECTS, rank_fields=["title"], max_tokens_per_doc=512)
    sent = build(api_base, request).json
    assert sent == {"model": "cohere-rerank-v3.5", "query": CAPITAL_QUERY,
                    "documents": ["title: Nevada", "title: USA"], "max_tokens_per_doc": 512}


def test_key_and_base_come_from_the_azure_environment():
    dep = resolve_deployment("azure_ai/cohere-rerank-v3.5", environ={
        "AZURE_AI_API_KEY": "az-key", "AZURE_AI_API_BASE": "https://e.models.ai.azure.com"})
    upstream = dep.provider.build(make_request("q", ["d"]), dep)
    assert upstream.headers["authorization"] == "Bearer az-key"
    assert upstream.url == "https://e.models.ai.azure.com/v1/rerank"


def test_no_api_base_is_a_configuration_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("AZURE_AI_API_BASE", raising=False)
    with pytest.raises(proxy.ConfigurationError, match="AZURE_AI_API_BASE"):
        proxy.rerank("azure_ai/cohere-rerank-v3.5", "q", ["d"], api_key="k")


def test_relative_api_base_is_refused():
    with pytest.raises(proxy.ConfigurationError, match="absolute URL"):
        build("e.models.ai.azure.com/v1")


@pytest.fixture(scope="module")
def fake():
    server = FakeAzureAI().start()
    yield server
    server.stop()


def test_foundry_route_with_a_foundry_deployment_name_is_priced(fake):
    fake.reset()
    response = proxy.rerank("azure_ai/Cohere-rerank-v4.0-pro", CAPITAL_QUERY, CAPITALS, top_n=2,
                            api_key=fake.api_key, api_base=fake.url + "/providers/cohere/v2")
    assert fake.last.path == "/providers/cohere/v2/rerank"
    assert fake.last.body == {"model": "Cohere-rerank-v4.0-pro", "query": CAPITAL_QUERY,
                              "documents": CAPITALS, "top_n": 2}
    assert [r.index for r in response.results] == [i for i, _ in ranked(CAPITAL_QUERY, CAPITALS, 2)]
    assert response.cost == pytest.approx(0.0025)


def test_object_documents_echo_whole_through_the_v1_endpoint(fake):
    fake.reset()
    response = proxy.rerank("azure_ai/cohere-rerank-v4.0-fast", CAPITAL_QUERY, OBJECTS,
                            rank_fields=["title", "body"], api_key=fake.api_key, api_base=fake.url)
    assert fake.last.path == "/v1/rerank"
    assert response.results[0].document.model_dump(exclude_none=True) == OBJECTS[1]
