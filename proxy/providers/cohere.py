"""Cohere's own rerank API, v1 or v2 upstream: v1 when the caller relies on v1-only fields."""

from __future__ import annotations

from typing import Any

from ..request import RerankRequest
from .base import Deployment
from .families import ResultsFamily

_EXPLICIT_PATHS = ("/v1/rerank", "/v2/rerank")


class Cohere(ResultsFamily):
    name = "cohere"
    api_key_env = ("COHERE_API_KEY", "CO_API_KEY")
    api_base_env = ("COHERE_API_BASE",)
    default_api_base = "https://api.cohere.com"
    max_documents_per_call = 1000

    def upstream_version(self, request: RerankRequest, deployment: Deployment) -> int:
        base = deployment.require_base()
        for version, path in enumerate(_EXPLICIT_PATHS, start=1):
            if base.endswith(path):
                return version
        return 1 if request.uses_v1_fields else 2

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if base.endswith(_EXPLICIT_PATHS):
            return base
        base = base.removesuffix("/v1").removesuffix("/v2")
        return f"{base}/v{self.upstream_version(request, deployment)}/rerank"

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        body: dict[str, Any] = {"model": deployment.model, "query": request.query}
        if self.upstream_version(request, deployment) == 1:
            body["documents"] = list(request.documents)
            if request.rank_fields is not None:
                body["rank_fields"] = list(request.rank_fields)
            if request.max_chunks_per_doc is not None:
                body["max_chunks_per_doc"] = request.max_chunks_per_doc
        else:
            body["documents"] = list(request.texts)
            if request.max_tokens_per_doc is not None:
                body["max_tokens_per_doc"] = request.max_tokens_per_doc
        if request.top_n is not None:
            body["top_n"] = request.top_n
        return body
