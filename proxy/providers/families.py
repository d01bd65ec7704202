"""Wire families: the response shapes many rerank APIs share. A provider picks one, overrides what differs."""

from __future__ import annotations

from typing import Any, ClassVar

from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Scored, Usage, as_int, malformed


def usage_from(data: dict[str, Any]) -> Usage:
    """Usage from Cohere's `meta.billed_units`/`meta.tokens` or an OpenAI-style `usage` object."""
    meta = data.get("meta") or {}
    billed = meta.get("billed_units") or {}
    tokens = meta.get("tokens") or {}
    usage = data.get("usage") or {}
    search_units = billed.get("search_units")
    input_tokens = as_int(tokens.get("input_tokens")) or as_int(billed.get("input_tokens")) \
        or as_int(usage.get("prompt_tokens")) or as_int(usage.get("input_tokens"))
    output_tokens = as_int(tokens.get("output_tokens")) or as_int(usage.get("completion_tokens"))
    total_tokens = as_int(usage.get("total_tokens")) or as_int(billed.get("total_tokens"))
    return Usage(
        search_units=float(search_units) if isinstance(search_units, (int, float)) else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
    )


class ResultsFamily(Provider):
    """`{results: [{index, relevance_score}], usage|meta}`: Cohere, Together, Jina, Infinity, vLLM, ..."""

    results_key: ClassVar[str] = "results"
    score_key: ClassVar[str] = "relevance_score"
    path: ClassVar[str] = "/rerank"

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        return base if base.endswith(self.path) else base + self.path

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        body: dict[str, Any] = {"model": deployment.model, "query": request.query,
                                "documents": list(request.texts)}
        if request.top_n is not None:
            body["top_n"] = request.top_n
        return body

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict):
            raise malformed(self.name, "expected a JSON object")
        items = data.get(self.results_key)
        if items is None and self.results_key != "results":
            items = data.get("results")
        if not isinstance(items, list):
            raise malformed(self.name, f"no '{self.results_key}' list")
        scores = [Scored(int(item["index"]), float(item[self.score_key])) for item in items]
        upstream_id = data.get("id")
        return ProviderResult(scores, usage_from(data), upstream_id if isinstance(upstream_id, str) else None)


def passthrough(request: RerankRequest, deployment: Deployment, *names: str) -> dict[str, Any]:
    """The provider options among `names` that are set; `provider_params` of the request win."""
    options = {name: deployment.params[name] for name in names if deployment.params.get(name) is not None}
    options.update({name: request.params[name] for name in names if request.params.get(name) is not None})
    return options
