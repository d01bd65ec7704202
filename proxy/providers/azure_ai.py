"""Cohere rerank on Azure AI (`azure_ai/…`): Cohere's API at the deployment's own endpoint.

The URL decides the API version: a path ending in `/v1/rerank` or `/v2/rerank` is used as is; one ending in
`/v1`, `/v2` or `/providers/cohere/v2` (Foundry) gets `/rerank`; anything else gets `/v1/rerank` (serverless).
The body is Cohere's v1 or v2 body to match.
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..request import RerankRequest
from .base import Deployment
from .cohere import Cohere

_AS_IS = ("/v1/rerank", "/v2/rerank")
_ADD_RERANK = ("/v1", "/v2", "/providers/cohere/v2")


class AzureAI(Cohere):
    name = "azure_ai"
    api_key_env = ("AZURE_AI_API_KEY",)
    api_base_env = ("AZURE_AI_API_BASE",)
    default_api_base = None
    requires_api_base = True

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if not base.startswith(("https://", "http://")):
            raise ConfigurationError(f"azure_ai api_base must be an absolute URL, got '{base}'")
        if base.endswith(_AS_IS):
            return base
        return base + ("/rerank" if base.endswith(_ADD_RERANK) else "/v1/rerank")

    def upstream_version(self, request: RerankRequest, deployment: Deployment) -> int:
        return 2 if self.url(request, deployment).endswith("/v2/rerank") else 1
