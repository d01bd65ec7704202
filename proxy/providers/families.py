"""Wire families: the response shapes many rerank APIs share. A provider picks one, overrides what differs."""

from __future__ import annotations

from typing import Any, ClassVar

from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Usage, as_int, malformed, scores_from


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
    """`{results: [{index, relevance_score}], usage|meta}`: Cohere, Together, Jina, Infinity, vLLM, ...

    The body is `model, query, documents` (the ranked texts) plus `top_n` when the caller set one. Switches:
    `top_n_field` renames `top_n`; `sends_return_documents` adds `return_documents: false` (we echo documents
    from the request, so the upstream need not send them back); `accepts_objects` sends object documents with
    `rank_fields` as given; `options` names the provider options copied from the request's params (or the
    deployment's) into the body.
    """

    results_key: ClassVar[str] = "results"
    score_key: ClassVar[str] = "relevance_score"
    path: ClassVar[str] = "/rerank"
    top_n_field: ClassVar[str] = "top_n"
    sends_return_documents: ClassVar[bool] = False
    accepts_objects: ClassVar[bool] = False

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        return base if base.endswith(self.path) else base + self.path

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        body: dict[str, Any] = {"model": deployment.model, "query": request.query}
        if self.accepts_objects and request.rank_fields and request.has_object_documents:
            body["documents"] = list(request.documents)
            body["rank_fields"] = list(request.rank_fields)
        else:
            body["documents"] = list(request.texts)
        if request.top_n is not None:
            body[self.top_n_field] = request.top_n
        if self.sends_return_documents:
            body["return_documents"] = False
        body.update(passthrough_options(request, deployment, *self.options))
        return body

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict):
            raise malformed(self.name, "expected a JSON object")
        items = data.get(self.results_key)
        if items is None and self.results_key != "results":
            items = data.get("results")
        if not isinstance(items, list):
            raise malformed(self.name, f"no '{self.results_key}' list")
        upstream_id = data.get("id")
        return ProviderResult(scores_from(items, self.score_key), usage_from(data),
                              upstream_id if isinstance(upstream_id, str) else None)


class DataFamily(ResultsFamily):
    """`{object: "list", data: [{index, relevance_score, document?}], usage}`: Fireworks, Voyage.

    A `results` list is read too when `data` is absent (Fireworks has answered both ways).
    """

    results_key = "data"


def passthrough_options(request: RerankRequest, deployment: Deployment, *names: str) -> dict[str, Any]:
    """The provider options among `names` that are set; `provider_params` of the request win."""
    options = {name: deployment.params[name] for name in names if deployment.params.get(name) is not None}
    options.update({name: request.params[name] for name in names if request.params.get(name) is not None})
    return options
