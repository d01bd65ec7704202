"""Voyage AI rerank (`voyage/…`): a `data` list plus `usage.total_tokens`, billed per token.

Voyage names the cut-off `top_k`, takes at most 1,000 documents a call, and truncates long inputs unless
`truncation: false` is passed through. Keys issued by MongoDB Atlas (`al-…`) are served at ai.mongodb.com.
"""

from __future__ import annotations

from ..request import RerankRequest
from .base import Deployment
from .families import DataFamily

MONGODB_API_BASE = "https://ai.mongodb.com/v1"


class Voyage(DataFamily):
    name = "voyage"
    api_key_env = ("VOYAGE_API_KEY", "VOYAGE_AI_API_KEY", "VOYAGE_AI_TOKEN")
    api_base_env = ("VOYAGE_API_BASE",)
    default_api_base = "https://api.voyageai.com/v1"
    max_documents_per_call = 1000
    top_n_field = "top_k"
    sends_return_documents = True
    options = ("truncation",)

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        if not deployment.api_base and (deployment.api_key or "").startswith("al-"):
            return MONGODB_API_BASE + "/rerank"
        base = deployment.require_base()
        if base.endswith("/rerank"):
            return base
        return base + ("/rerank" if base.endswith("/v1") else "/v1/rerank")
