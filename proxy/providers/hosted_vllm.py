"""A vLLM server's rerank route (`hosted_vllm/…`, alias `vllm/…`): `POST {api_base}/rerank`.

vLLM serves `/rerank`, `/v1/rerank` (with a deprecation warning) and `/v2/rerank`; we always call `/rerank`,
so a base ending in `/v1/rerank` is rewritten. vLLM reads `top_n: 0` as "all", so `top_n` is sent only when
the caller set one (never 0). It logs and ignores fields it does not know, so none are sent.
"""

from __future__ import annotations

from typing import Any

from ..request import RerankRequest
from .base import Deployment
from .families import ResultsFamily


class HostedVLLM(ResultsFamily):
    name = "hosted_vllm"
    aliases = ("vllm",)
    api_key_env = ("HOSTED_VLLM_API_KEY",)
    api_base_env = ("HOSTED_VLLM_API_BASE",)
    requires_api_key = False
    requires_api_base = True
    request_options = frozenset(("max_tokens_per_doc",))
    options = ("truncate_prompt_tokens", "truncation_side", "max_tokens_per_query", "priority")

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if base.endswith("/v1/rerank"):
            return base.removesuffix("/v1/rerank") + "/rerank"
        return base if base.endswith("/rerank") else base + "/rerank"

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        body = super().body(request, deployment)
        if request.max_tokens_per_doc is not None:
            body["max_tokens_per_doc"] = request.max_tokens_per_doc
        return body
