"""Bedrock: URL and model-ARN rules, the request body, and SigV4 signatures checked by the fake."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.bedrock import ACCESS_KEY, REGION, SECRET_KEY, FakeBedrock

CREDENTIALS = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}


def build(model: str, params: dict | None = None, environ: dict | None = None, **request):
    deployment = resolve_deployment(model, params, environ=environ or {})
    return deployment.provider.build(make_request("q", ["a", "b", "c"], **request), deployment)


@pytest.fixture(scope="module")
def fake():
    fake = FakeBedrock().start()
    yield fake
    fake.stop()


@pytest.fixture
def bedrock(fake):
    fake.reset()
    fake.session_token = None
    return fake


def test_default_url_is_the_agent_runtime_of_the_region_from_the_environment():
    sent = build("bedrock/amazon.rerank-v1:0", CREDENTIALS, {"AWS_REGION": "eu-central-1"})
    assert sent.url == "https://bedrock-agent-runtime.eu-central-1.amazonaws.com/rerank"
    model = sent.json["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"]
    assert model == {"modelArn": "arn:aws:bedrock:eu-central-1::foundation-model/amazon.rerank-v1:0"}


def test_an_arn_is_sent_as_is_and_its_region_picks_the_endpoint():
    arn = "arn:aws:bedrock:ca-central-1::foundation-model/cohere.rerank-v3-5:0"
    sent = build(f"bedrock/{arn}", CREDENTIALS, {"AWS_REGION_NAME": "us-east-1"})
    assert sent.url == "https://bedrock-agent-runtime.ca-central-1.amazonaws.com/rerank"
    config = sent.json["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config["modelConfiguration"]["modelArn"] == arn


@pytest.mark.parametrize(("api_base", "url"), [
    ("http://vpce.example:8443", "http://vpce.example:8443/rerank"),
    ("http://vpce.example/rerank/", "http://vpce.example/rerank"),
    ("https://bedrock-runtime.us-west-2.amazonaws.com", "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank"),
])
def test_api_base_replaces_the_host(api_base, url):
    params = {**CREDENTIALS, "aws_region_name": REGION, "api_base": api_base}
    assert build("bedrock/amazon.rerank-v1:0", params).url == url


def test_number_of_results_is_top_n_else_every_document_and_no_unsigned_auth_header():
    params = {**CREDENTIALS, "aws_region_name": REGION}
    for top_n, expected in ((None, 3), (2, 2)):
        sent = build("bedrock/amazon.rerank-v1:0", params, top_n=top_n)
        config = sent.json["rerankingConfiguration"]["bedrockRerankingConfiguration"]
        assert config["numberOfResults"] == expected
    assert "authorization" not in build("bedrock/amazon.rerank-v1:0", params).headers


@pytest.mark.parametrize(("params", "missing"), [
    ({"aws_region_name": REGION}, "aws_access_key_id"),
    ({**CREDENTIALS}, "aws_region_name"),
])
def test_missing_credentials_or_region_is_a_configuration_error(params, missing):
    with pytest.raises(proxy.ConfigurationError, match=missing):
        build("bedrock/amazon.rerank-v1:0", params)


def test_object_documents_go_as_text_sources_of_the_ranked_fields(bedrock):
    docs = [{"title": "Nevada", "body": CAPITALS[0], "id": 1}, {"title": "USA", "body": CAPITALS[2], "id": 2}]
    response = proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, docs, rank_fields=["body"],
                            api_base=bedrock.url, aws_region_name=REGION, **CREDENTIALS)
    sources = bedrock.last.body["sources"]
    assert [s["inlineDocumentSource"] for s in sources] == [
        {"type": "TEXT", "textDocument": {"text": f"body: {d['body']}"}} for d in docs]
    assert response.results[0].index == 1
    assert response.results[0].document.model_dump(exclude_none=True) == docs[1]


def test_session_token_is_sent_and_signed(bedrock):
    bedrock.session_token = "FwoGZXIvYXdzEFAKE"
    proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, CAPITALS, api_base=bedrock.url,
                 aws_region_name=REGION, aws_session_token="FwoGZXIvYXdzEFAKE", **CREDENTIALS)
    assert bedrock.last.headers["x-amz-security-token"] == "FwoGZXIvYXdzEFAKE"
    assert "x-amz-security-token" in bedrock.last.headers["authorization"].split("SignedHeaders=")[1]


def test_a_signature_made_with_the_wrong_secret_is_refused(bedrock):
    with pytest.raises(proxy.UpstreamAuthError, match="signature we calculated does not match") as caught:
        proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, CAPITALS, api_base=bedrock.url,
                     aws_region_name=REGION, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key="not-the-secret")
    assert caught.value.upstream_status == 403


def test_a_signature_scoped_to_another_region_is_refused(bedrock):
    with pytest.raises(proxy.UpstreamAuthError, match="scoped to a valid region"):
        proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, CAPITALS, api_base=bedrock.url,
                     aws_region_name="eu-west-1", **CREDENTIALS)


def test_arn_models_are_priced_per_search_unit_of_100_documents(bedrock):
    arn = f"arn:aws:bedrock:{REGION}::foundation-model/cohere.rerank-v3-5:0"
    documents = [f"filler {i}" for i in range(150)]
    response = proxy.rerank(f"bedrock/{arn}", CAPITAL_QUERY, documents, api_base=bedrock.url, **CREDENTIALS)
    assert response.meta.billed_units.search_units == 2
    assert response.cost == pytest.approx(0.004)
