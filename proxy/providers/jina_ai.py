"""Jina AI rerank (`jina_ai/…`): Cohere-like `results` plus `usage.total_tokens`, billed per token.

Jina's endpoint lives at a fixed path: a custom `api_base` keeps only its scheme and host. Jina returns the
documents unless told not to, so we say `return_documents: false` and echo them ourselves.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..request import RerankRequest
from .base import Deployment
from .families import ResultsFamily


class JinaAI(ResultsFamily):
    name = "jina_ai"
    api_key_env = ("JINA_AI_API_KEY", "JINA_API_KEY", "JINA_AI_TOKEN")
    api_base_env = ("JINA_AI_API_BASE",)
    default_api_base = "https://api.jina.ai"
    sends_return_documents = True

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        parts = urlsplit(deployment.require_base())
        return f"{parts.scheme}://{parts.netloc}/v1/rerank"
