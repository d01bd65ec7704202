"""Vertex AI ranking: URL and project rules, Google token fetching and caching, the records wire format."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import proxy
from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.vertex_ai import PROJECT, RANK_PATH, FakeVertexAI

MODEL = "vertex_ai/semantic-ranker-default@latest"
vertex = REGISTRY["vertex_ai"]


def build(params: dict, environ: dict | None = None, **request):
    deployment = resolve_deployment(MODEL, params, environ=environ or {})
    return deployment.provider.build(make_request("q", ["a", "b"], **request), deployment)


@pytest.fixture
def fake():
    """A fresh fake (and so a fresh service-account key, and an empty token cache for it) per test."""
    fake = FakeVertexAI().start()
    yield fake
    fake.stop()


def call(fake: FakeVertexAI, documents=CAPITALS, **kwargs):
    return proxy.rerank(MODEL, CAPITAL_QUERY, documents, api_base=fake.url,
                        vertex_credentials=fake.credentials_json(), **kwargs)


def test_default_url_and_quota_project_header_from_the_environment():
    sent = build({"vertex_credentials": "/nowhere/sa.json"}, {"VERTEXAI_PROJECT": "my-proj"})
    assert sent.url == ("https://discoveryengine.googleapis.com/v1/projects/my-proj/locations/global/"
                        "rankingConfigs/default_ranking_config:rank")
    assert sent.headers["x-goog-user-project"] == "my-proj"
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(("api_base", "url"), [
    ("http://private.example/", f"http://private.example{RANK_PATH}"),
    ("http://private.example/v1", f"http://private.example{RANK_PATH}"),
    ("http://private.example/custom:rank", "http://private.example/custom:rank"),
])
def test_api_base_overrides_scheme_and_host(api_base, url):
    assert build({"vertex_project": PROJECT, "api_base": api_base}).url == url


def test_project_falls_back_to_the_inline_service_account_and_is_required_otherwise():
    assert build({"vertex_credentials": json.dumps({"type": "service_account", "project_id": "sa-proj"})}) \
        .headers["x-goog-user-project"] == "sa-proj"
    with pytest.raises(proxy.ConfigurationError, match="vertex_project"):
        build({"vertex_credentials": "/nowhere/sa.json"})


def test_build_reads_no_credentials_file_the_failure_comes_when_sending():
    sent = build({"vertex_project": PROJECT, "vertex_credentials": "/nowhere/sa.json"})
    assert sent.auth is not None
    with pytest.raises(proxy.ConfigurationError, match="could not be loaded"):
        proxy.rerank(MODEL, "q", ["a"], vertex_project=PROJECT, vertex_credentials="/nowhere/sa.json",
                     api_base="http://127.0.0.1:9")


def test_records_carry_the_index_as_id_and_top_n_as_topN():
    body = build({"vertex_project": PROJECT}, top_n=1).json
    assert body == {"model": "semantic-ranker-default@latest", "query": "q", "topN": 1,
                    "records": [{"id": "0", "content": "a"}, {"id": "1", "content": "b"}],
                    "ignoreRecordDetailsInResponse": True}


def test_proto3_defaults_a_missing_score_is_zero_and_an_empty_answer_has_no_results():
    request = make_request("q", ["a", "b"])
    parsed = vertex.parse({"records": [{"id": "1", "score": 0.5}, {"id": "0"}]}, request)
    assert [(s.index, s.score) for s in parsed.scores] == [(1, 0.5), (0, 0.0)]
    assert vertex.parse({}, request).scores == []
    with pytest.raises(proxy.UpstreamMalformedError):
        vertex.parse({"unexpected": True}, request)


def test_one_token_serves_many_calls_including_concurrent_split_calls(fake):
    documents = [f"filler {i}" for i in range(450)]
    response = call(fake, documents=documents)  # three concurrent calls, all waiting for the first token
    call(fake)
    call(fake, top_n=1)
    assert len(fake.token_requests) == 1
    assert fake.token_requests[0].body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert len(fake.requests) == 3 + 2
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {t}" for t in fake.issued}
    assert response.meta.billed_units.search_units == 2 + 2 + 1
    assert response.cost == pytest.approx(0.005)


def test_a_token_near_expiry_is_refreshed(fake):
    fake.token_lifetime = 60  # inside google-auth's refresh margin: stale as soon as it arrives
    call(fake)
    call(fake)
    assert len(fake.token_requests) == 2
    assert len(fake.issued) == 2


def test_a_token_the_api_refuses_is_dropped_and_the_next_call_fetches_another(fake):
    call(fake)
    fake.fail_next("401")
    with pytest.raises(proxy.UpstreamAuthError):
        call(fake)
    call(fake)
    assert len(fake.token_requests) == 2


def test_a_key_the_token_endpoint_refuses_is_an_upstream_auth_error(fake):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = {**fake.service_account(), "private_key": other_key.decode()}
    with pytest.raises(proxy.UpstreamAuthError, match="invalid_grant") as caught:
        proxy.rerank(MODEL, CAPITAL_QUERY, CAPITALS, api_base=fake.url,
                     vertex_credentials=json.dumps(account))
    assert caught.value.status == 502
    assert fake.requests == []


def test_a_token_endpoint_slower_than_the_timeout_is_an_upstream_timeout(fake):
    fake.token_delay = 1.0
    with pytest.raises(proxy.UpstreamTimeoutError, match="no Google access token") as caught:
        call(fake, timeout=0.2)
    assert caught.value.status == 504
    assert fake.requests == []


def test_google_error_bodies_give_their_message(fake):
    fake.fail_next("400")
    with pytest.raises(proxy.UpstreamRejectedError, match="scripted failure 400"):
        call(fake)
