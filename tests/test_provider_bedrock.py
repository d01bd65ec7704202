"""Bedrock: URL and model-ARN rules, the request body, SigV4 signatures checked by the fake, and credentials
from keys, named profiles and botocore's default chain (cached per credential set)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

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
    ({"aws_region_name": REGION, "aws_access_key_id": ACCESS_KEY}, "aws_secret_access_key"),
    ({"aws_region_name": REGION, "aws_secret_access_key": SECRET_KEY}, "aws_access_key_id"),
    ({**CREDENTIALS}, "aws_region_name"),
])
def test_half_a_key_pair_or_no_region_is_a_configuration_error(params, missing):
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


# --- credentials the way boto users give them ------------------------------------------------------

AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


class AwsFiles:
    """A temp AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, and nothing else botocore could find."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch):
        self.credentials, self.config = directory / "credentials", directory / "config"
        self.credentials.write_text("")
        self.config.write_text("")
        for name in AWS_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(self.credentials))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(self.config))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def add_profile(self, name: str, **fields: str) -> None:
        lines = "".join(f"{k} = {v}\n" for k, v in fields.items())
        with self.credentials.open("a") as handle:
            handle.write(f"[{name}]\n{lines}")


@pytest.fixture
def aws(tmp_path, monkeypatch):
    return AwsFiles(tmp_path, monkeypatch)


def rerank(bedrock, **params):
    return proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, CAPITALS, api_base=bedrock.url,
                        aws_region_name=REGION, **params)


def test_a_named_profile_from_the_shared_credentials_file_signs(bedrock, aws):
    profile = f"rerank-{uuid.uuid4().hex[:8]}"  # credentials are cached per profile for the process
    aws.add_profile(profile, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    assert len(rerank(bedrock, aws_profile_name=profile).results) == len(CAPITALS)
    assert bedrock.last.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")


def test_aws_profile_from_the_environment_is_used(bedrock, aws, monkeypatch):
    profile = f"rerank-{uuid.uuid4().hex[:8]}"
    aws.add_profile(profile, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    monkeypatch.setenv("AWS_PROFILE", profile)
    assert len(rerank(bedrock).results) == len(CAPITALS)


def test_an_unknown_profile_is_a_configuration_error(bedrock, aws):
    with pytest.raises(proxy.ConfigurationError, match="could not be found"):
        rerank(bedrock, aws_profile_name=f"nobody-{uuid.uuid4().hex[:8]}")


def test_without_keys_or_profile_the_default_chain_is_asked(bedrock, aws):
    with pytest.raises(proxy.ConfigurationError, match="found no AWS credentials.*aws_access_key_id"):
        rerank(bedrock)  # nothing anywhere: the error says what to give (and nothing is cached)
    aws.add_profile("default", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    assert len(rerank(bedrock).results) == len(CAPITALS)


def test_refreshable_credentials_load_once_and_refresh_near_expiry(bedrock, aws, tmp_path):
    """A `credential_process` profile gives botocore RefreshableCredentials: the process runs once while
    they are fresh, and again for every call while they are about to expire."""
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "runs, lifetime = pathlib.Path(sys.argv[1]), int(sys.argv[2])\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "expires = datetime.now(UTC) + timedelta(seconds=lifetime)\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {ACCESS_KEY!r}, 'SecretAccessKey': {SECRET_KEY!r},\n"
        "                  'SessionToken': 'process-token', 'Expiration': expires.isoformat()}))\n")
    bedrock.session_token = "process-token"
    # 60 s is inside botocore's refresh window: one run to load, then one more for every call
    for lifetime, expected_runs in ((3600, 1), (60, 5)):
        profile, runs = f"process-{uuid.uuid4().hex[:8]}", tmp_path / f"runs-{lifetime}"
        with aws.config.open("a") as handle:
            handle.write(f"[profile {profile}]\ncredential_process = {sys.executable} {script} {runs} {lifetime}\n")
        for _ in range(4):
            rerank(bedrock, aws_profile_name=profile)
        assert bedrock.last.headers["x-amz-security-token"] == "process-token"
        assert len(runs.read_text()) == expected_runs


def test_a_thousand_calls_build_the_signer_once(bedrock):
    deployments = [resolve_deployment("bedrock/amazon.rerank-v1:0", {**CREDENTIALS, "aws_region_name": REGION},
                                      environ={}) for _ in range(1000)]
    auths = {id(d.provider.auth(d)) for d in deployments}
    assert len(auths) == 1  # one auth (and credentials) per credential set, not per request
    auth = deployments[0].provider.auth(deployments[0])

    async def many() -> None:
        router = proxy.Router(model_list=[{"model_name": "b", "litellm_params": {
            "model": "bedrock/amazon.rerank-v1:0", "api_base": bedrock.url, "aws_region_name": REGION,
            **CREDENTIALS}}])
        first = None
        for _ in range(1000):
            await router.arerank("b", CAPITAL_QUERY, CAPITALS[:2])
            first = first or auth.signer
            assert auth.signer is first

    asyncio.run(many())
    assert len(bedrock.requests) == 1000  # every one signed well enough for the fake to answer
