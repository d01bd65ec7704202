"""AWS Bedrock's Rerank API (bedrock-agent-runtime `POST /rerank`), SigV4-signed with botocore.

The model is a foundation-model ARN or a bare id (`amazon.rerank-v1:0`), which we expand to the ARN of the
deployment's region. Credentials: keys, a named profile, or botocore's default chain (see `signing`); with
`aws_role_name` those credentials (or `aws_web_identity_token`) assume that role through STS first.
Documents always go as TEXT sources of the ranked text (Cohere's semantics: objects rank
on `text` or `rank_fields`), so keys such as ids never sway the score. Bedrock reports no usage: billing falls
back to search units of 100 documents.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, malformed, scores_from
from .signing import AssumedRole, SigV4Auth, sigv4_auth

_ARN_PREFIX = "arn:"


class Bedrock(Provider):
    name = "bedrock"
    requires_api_key = False
    api_base_env = ("BEDROCK_API_BASE",)
    max_documents_per_call = 1000
    extra = "bedrock"
    param_env: ClassVar[dict[str, tuple[str, ...]]] = {
        "aws_region_name": ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"),
        "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
        "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "aws_session_token": ("AWS_SESSION_TOKEN",),
        "aws_profile_name": ("AWS_PROFILE",),
    }
    options_in_body = False  # credentials and endpoints: the deployment's only
    options = ("aws_role_name", "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint",
               "aws_bedrock_runtime_endpoint")

    def check_options(self, params: dict[str, Any]) -> None:
        needs_role = [k for k in ("aws_session_name", "aws_web_identity_token", "aws_sts_endpoint") if params.get(k)]
        if needs_role and not params.get("aws_role_name"):
            raise ValueError(f"{', '.join(needs_role)} need(s) aws_role_name (the ARN of the role to assume)")

    def region(self, deployment: Deployment) -> str:
        """The ARN's own region when the model is an ARN (the endpoint must match it), else the parameter."""
        parts = deployment.model.split(":")
        if deployment.model.startswith(_ARN_PREFIX) and len(parts) > 3 and parts[3]:
            return parts[3]
        env = "AWS_REGION_NAME, AWS_REGION or AWS_DEFAULT_REGION"
        return str(deployment.require_param("aws_region_name", env))

    def model_arn(self, deployment: Deployment) -> str:
        if deployment.model.startswith(_ARN_PREFIX):
            return deployment.model
        return f"arn:aws:bedrock:{self.region(deployment)}::foundation-model/{deployment.model}"

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.api_base or deployment.params.get("aws_bedrock_runtime_endpoint")
        if not base:
            return f"https://bedrock-agent-runtime.{self.region(deployment)}.amazonaws.com/rerank"
        # A LiteLLM-style bedrock-runtime endpoint names the same host family: use its agent-runtime twin.
        base = base.rstrip("/").replace("://bedrock-runtime.", "://bedrock-agent-runtime.")
        return base if base.endswith("/rerank") else base + "/rerank"

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        return {
            "queries": [{"type": "TEXT", "textQuery": {"text": request.query}}],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "modelConfiguration": {"modelArn": self.model_arn(deployment)},
                    "numberOfResults": request.top_n or len(request.texts),
                },
            },
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}
                for text in request.texts
            ],
        }

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        return {}

    def auth(self, deployment: Deployment) -> SigV4Auth:
        """Keys when given (both, or the missing one is named), else `aws_profile_name`, else the default chain;
        then the role `aws_role_name` assumed with them (or with `aws_web_identity_token`)."""
        params = deployment.params
        access_key, secret_key = params.get("aws_access_key_id"), params.get("aws_secret_access_key")
        if access_key and not secret_key:
            deployment.require_param("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")
        if secret_key and not access_key:
            deployment.require_param("aws_access_key_id", "AWS_ACCESS_KEY_ID")
        return sigv4_auth(
            provider=self.name, service="bedrock", region=self.region(deployment), timeout=deployment.timeout,
            access_key=access_key, secret_key=secret_key, session_token=params.get("aws_session_token") or None,
            profile=params.get("aws_profile_name") or None,
            role=AssumedRole.of(params) if params.get("aws_role_name") else None,
        )

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise malformed(self.name, "no 'results' list")
        return ProviderResult(scores_from(data["results"], "relevanceScore"))
