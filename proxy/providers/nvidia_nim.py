"""NVIDIA NIM reranking: the hosted `/v1/retrieval/{model}/reranking` route or a self-hosted `/v1/ranking`.

A model written `ranking/<id>`, or a base ending in `/ranking`, picks the self-hosted route (which refuses
`top_k`). Hosted URLs spell versions with `_` (`llama-3_2`) where the body's model id has `.`. NIM answers
unbounded `logit`s: the relevance score is their sigmoid, and each result keeps the raw `logit`.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigurationError
from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Scored, Usage, as_int, malformed
from .families import passthrough_options

_SELF_HOSTED = "ranking/"


def sigmoid(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)
    return z / (1.0 + z)


class NvidiaNim(Provider):
    name = "nvidia_nim"
    api_key_env = ("NVIDIA_NIM_API_KEY",)
    api_base_env = ("NVIDIA_NIM_API_BASE",)
    default_api_base = "https://ai.api.nvidia.com"
    requires_api_key = False  # a self-hosted NIM may need none; the hosted route checks in `build`
    max_documents_per_call = 512
    options = ("truncate",)

    def self_hosted(self, deployment: Deployment) -> bool:
        return deployment.model.startswith(_SELF_HOSTED) or deployment.require_base().endswith("/ranking")

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if self.self_hosted(deployment):
            return base if base.endswith("/ranking") else base.removesuffix("/v1") + "/v1/ranking"
        if not deployment.api_key:
            raise ConfigurationError(f"Provider '{self.name}' needs an API key (NVIDIA_NIM_API_KEY) for the "
                                     f"hosted model '{deployment.model}'")
        if "/retrieval/" in base:
            return base
        return f"{base.removesuffix('/v1')}/v1/retrieval/{deployment.model.replace('.', '_')}/reranking"

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        hosted = not self.self_hosted(deployment)
        model = deployment.model.replace("_", ".") if hosted else deployment.model.removeprefix(_SELF_HOSTED)
        body: dict[str, Any] = {
            "model": model,
            "query": {"text": request.query},
            "passages": [{"text": text} for text in request.texts],
            **passthrough_options(request, deployment, *self.options),
        }
        if hosted and request.top_n is not None:
            body["top_k"] = request.top_n
        return body

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict) or not isinstance(data.get("rankings"), list):
            raise malformed(self.name, "no 'rankings' list")
        scores = []
        for item in data["rankings"]:
            logit = float(item["logit"])
            scores.append(Scored(int(item["index"]), sigmoid(logit), {"logit": logit}))
        tokens = as_int((data.get("usage") or {}).get("total_tokens"))
        return ProviderResult(scores, Usage(total_tokens=tokens))
