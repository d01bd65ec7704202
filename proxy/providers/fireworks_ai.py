"""Fireworks AI rerank (`fireworks_ai/…`): a `data` list plus `usage`, billed per token.

Model ids: Fireworks documents both `accounts/fireworks/models/qwen3-reranker-8b` (API reference) and
the short `fireworks/qwen3-reranker-8b` (guides). Either is sent as written; a bare name such as
`qwen3-reranker-8b` gets the `fireworks/` prefix. (LiteLLM prefixes `fireworks/` to every id, which turns
the long form into the invalid `fireworks/accounts/fireworks/models/…`.)
"""

from __future__ import annotations

from typing import Any

from ..request import RerankRequest
from .base import Deployment
from .families import DataFamily


def fireworks_model_id(model: str) -> str:
    return model if "/" in model else f"fireworks/{model}"


class FireworksAI(DataFamily):
    name = "fireworks_ai"
    api_key_env = ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN")
    api_base_env = ("FIREWORKS_API_BASE",)
    default_api_base = "https://api.fireworks.ai/inference/v1"
    sends_return_documents = True
    options = ("task",)

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if base.endswith("/rerank"):
            return base
        return base + ("/rerank" if base.endswith("/v1") else "/inference/v1/rerank")

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        return {**super().body(request, deployment), "model": fireworks_model_id(deployment.model)}
