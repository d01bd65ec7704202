"""Bedrock with `aws_role_name`: the role is assumed through STS (a fake on loopback that verifies the
SigV4-signed AssumeRole call), its credentials sign the rerank call, are reused while fresh and renewed
before they expire; `aws_web_identity_token` assumes the role with an OIDC token instead."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from starlette.requests import Request

import proxy
from proxy.settings import ConfigError, parse_config
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.bedrock import REGION, FakeBedrock
from tests.fakes.sts import BASE_ACCESS_KEY, BASE_SECRET_KEY, ROLE_ARN, WEB_IDENTITY_TOKEN, FakeSTS


class RoleBedrock(FakeBedrock):
    """Bedrock that accepts only credentials the fake STS issued (and their session token)."""

    sts: FakeSTS

    def check_auth(self, request: Request) -> None:
        akid = request.headers.get("authorization", "").partition("Credential=")[2].split("/")[0]
        granted = next((c for c in self.sts.issued if c.access_key == akid), None)
        if granted is not None:
            self.access_key, self.secret_key, self.session_token = granted.access_key, granted.secret_key, granted.token
        super().check_auth(request)


@pytest.fixture(scope="module")
def servers():
    sts = FakeSTS(REGION).start()
    bedrock = RoleBedrock()
    bedrock.sts = sts
    bedrock.access_key = "AKID-NONE-ISSUED-YET"
    bedrock.start()
    yield sts, bedrock
    bedrock.stop()
    sts.stop()


@pytest.fixture
def sts(servers) -> FakeSTS:
    servers[0].reset()
    servers[1].reset()
    return servers[0]


@pytest.fixture
def bedrock(servers) -> RoleBedrock:
    return servers[1]


def role_params(sts: FakeSTS, **extra: str) -> dict[str, str]:
    # a session name of its own per test: credentials are cached per role and session for the process
    return {"aws_role_name": ROLE_ARN, "aws_session_name": f"s-{uuid.uuid4().hex[:10]}",
            "aws_sts_endpoint": sts.url, "aws_region_name": REGION, **extra}


def rerank(bedrock: RoleBedrock, params: dict[str, str]) -> proxy.RerankResponse:
    return proxy.rerank("bedrock/amazon.rerank-v1:0", CAPITAL_QUERY, CAPITALS, api_base=bedrock.url, **params)


def test_the_role_is_assumed_with_a_signed_call_and_its_credentials_sign_the_rerank(sts, bedrock):
    params = role_params(sts, aws_access_key_id=BASE_ACCESS_KEY, aws_secret_access_key=BASE_SECRET_KEY)
    for _ in range(3):
        assert len(rerank(bedrock, params).results) == len(CAPITALS)
    assert len(sts.calls) == 1  # cached while fresh
    call = sts.calls[0]
    assert (call["Action"], call["RoleArn"], call["RoleSessionName"]) == ("AssumeRole", ROLE_ARN,
                                                                           params["aws_session_name"])
    granted = sts.issued[0]
    assert bedrock.last.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={granted.access_key}/")
    assert bedrock.last.headers["x-amz-security-token"] == granted.token
    assert len(bedrock.requests) == 3


def test_credentials_near_expiry_are_renewed_before_they_expire(sts, bedrock):
    """Credentials with 12 minutes left are inside botocore's 15-minute refresh window: still valid, but every
    call assumes the role again and signs with the newest."""
    sts.lifetime = timedelta(minutes=12)
    params = role_params(sts, aws_access_key_id=BASE_ACCESS_KEY, aws_secret_access_key=BASE_SECRET_KEY)
    for _ in range(3):
        rerank(bedrock, params)
    assert len(sts.calls) == 3
    assert bedrock.last.headers["x-amz-security-token"] == sts.issued[-1].token


def test_a_web_identity_token_assumes_the_role_without_signing(sts, bedrock):
    params = role_params(sts, aws_web_identity_token=WEB_IDENTITY_TOKEN)
    assert len(rerank(bedrock, params).results) == len(CAPITALS)
    assert [c["Action"] for c in sts.calls] == ["AssumeRoleWithWebIdentity"]
    assert bedrock.last.headers["x-amz-security-token"] == sts.issued[0].token


def test_a_role_sts_refuses_is_an_upstream_auth_error_naming_sts(sts, bedrock):
    params = role_params(sts, aws_access_key_id=BASE_ACCESS_KEY, aws_secret_access_key=BASE_SECRET_KEY,
                         aws_role_name="arn:aws:iam::123456789012:role/someone-else")
    with pytest.raises(proxy.UpstreamAuthError, match="STS refused") as caught:
        rerank(bedrock, params)
    assert caught.value.status == 502  # our credentials, not the caller's: another deployment may serve
    assert bedrock.requests == []


def test_a_base_signature_sts_cannot_verify_is_refused(sts, bedrock):
    params = role_params(sts, aws_access_key_id=BASE_ACCESS_KEY, aws_secret_access_key="not/the/secret")
    with pytest.raises(proxy.UpstreamAuthError, match="signature"):
        rerank(bedrock, params)
    assert sts.calls == []


def test_a_configured_role_serves_through_the_router(sts, bedrock):
    import asyncio

    entry = {"model_name": "b", "litellm_params": {
        "model": "bedrock/amazon.rerank-v1:0", "api_base": bedrock.url, "aws_access_key_id": BASE_ACCESS_KEY,
        "aws_secret_access_key": BASE_SECRET_KEY, **role_params(sts)}}

    async def call() -> proxy.RerankResponse:
        async with proxy.Router(model_list=[entry], environ={}) as router:
            return await router.arerank("b", CAPITAL_QUERY, CAPITALS)

    assert asyncio.run(call()).deployment == "b#0"
    assert [c["RoleSessionName"] for c in sts.calls] == [entry["litellm_params"]["aws_session_name"]]


@pytest.mark.parametrize("key", ["aws_session_name", "aws_web_identity_token", "aws_sts_endpoint"])
def test_role_options_without_a_role_are_refused_with_their_path(key):
    config = {"model_list": [{"model_name": "b", "litellm_params": {
        "model": "bedrock/amazon.rerank-v1:0", "aws_region_name": REGION, key: "x"}}]}
    with pytest.raises(ConfigError, match=rf"model_list\[0\]\.litellm_params: {key} need\(s\) aws_role_name"):
        parse_config(config, {})
