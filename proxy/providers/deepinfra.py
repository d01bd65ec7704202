"""DeepInfra's inference API, `POST /v1/inference/{model}`: parallel `queries`/`documents` arrays.

The query is repeated once per document; scores come back in input order (normalise sorts them) with
`input_tokens` for billing. A LiteLLM-style base ending in `/v1/openai` is accepted: `/openai` is dropped.
"""

from __future__ import annotations

from typing import Any

from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Scored, Usage, as_int, malformed
from .families import passthrough_options


class DeepInfra(Provider):
    name = "deepinfra"
    api_key_env = ("DEEPINFRA_API_KEY",)
    api_base_env = ("DEEPINFRA_API_BASE",)
    default_api_base = "https://api.deepinfra.com"
    options = ("instruction", "service_tier")

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base().removesuffix("/openai")
        if not base.endswith("/inference"):
            base = (base if base.endswith("/v1") else base + "/v1") + "/inference"
        return f"{base}/{deployment.model}"

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        return {"queries": [request.query] * len(request.texts), "documents": list(request.texts),
                **passthrough_options(request, deployment, *self.options)}

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict) or not isinstance(data.get("scores"), list):
            raise malformed(self.name, "no 'scores' list")
        if len(data["scores"]) != len(request.texts):
            raise malformed(self.name, f"{len(data['scores'])} scores for {len(request.texts)} documents")
        tokens = as_int(data.get("input_tokens"))
        request_id = data.get("request_id")
        return ProviderResult([Scored(i, float(s)) for i, s in enumerate(data["scores"])],
                              Usage(input_tokens=tokens, total_tokens=tokens),
                              request_id if isinstance(request_id, str) else None)
