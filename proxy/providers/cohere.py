"""Cohere's own rerank API, v1 or v2 upstream: v1 when the caller relies on v1-only fields."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from ..request import RerankRequest
from .base import Deployment, ProviderResult, Scored
from .families import ResultsFamily

_EXPLICIT_PATHS = ("/v1/rerank", "/v2/rerank")


@lru_cache(maxsize=256)
def _endpoint(base: str) -> tuple[int | None, str]:
    """A base URL read once: the version its explicit `/v1/rerank` or `/v2/rerank` path fixes (else None), and
    the base itself when it has one, else the base without a trailing `/v1` or `/v2`."""
    for version, path in enumerate(_EXPLICIT_PATHS, start=1):
        if base.endswith(path):
            return version, base
    return None, base.removesuffix("/v1").removesuffix("/v2")


_V1_OPTIONS = frozenset(("max_chunks_per_doc",))
_V2_OPTIONS = frozenset(("max_tokens_per_doc", "priority", "relevant_spans"))


class Cohere(ResultsFamily):
    name = "cohere"
    api_key_env: ClassVar[tuple[str, ...]] = ("COHERE_API_KEY", "CO_API_KEY")  # Azure AI overrides these
    api_base_env = ("COHERE_API_BASE",)
    default_api_base: ClassVar[str | None] = "https://api.cohere.com"
    max_documents_per_call = 1000

    def unsupported(self, request: RerankRequest, deployment: Deployment) -> tuple[str, ...]:
        taken = _V1_OPTIONS if self.upstream_version(request, deployment) == 1 else _V2_OPTIONS
        return tuple(name for name in request.options if name not in taken)

    def upstream_version(self, request: RerankRequest, deployment: Deployment) -> int:
        fixed, _ = _endpoint(deployment.require_base())
        return fixed or (1 if request.uses_v1_fields else 2)

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        fixed, base = _endpoint(deployment.require_base())
        return base if fixed else f"{base}/v{1 if request.uses_v1_fields else 2}/rerank"

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
            if request.priority is not None:
                body["priority"] = request.priority
            if request.relevant_spans is not None:
                body["relevant_spans"] = request.relevant_spans
        if request.top_n is not None:
            body["top_n"] = request.top_n
        return body

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        result = super().parse(data, request)
        if request.relevant_spans is not None:  # each result's spans go back to the caller as Cohere sent them
            spans = {item["index"]: item["relevant_spans"] for item in data["results"] if "relevant_spans" in item}
            result.scores = [Scored(s.index, s.score, {"relevant_spans": spans[s.index]}) if s.index in spans else s
                             for s in result.scores]
        return result
