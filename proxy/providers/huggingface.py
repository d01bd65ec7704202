"""HuggingFace Text Embeddings Inference (TEI) `POST /rerank`: one model per server, so no model is sent.

TEI answers a bare list `[{index, score}]`, ignores `top_n` (we apply it) and refuses more texts than its
`--max-client-batch-size` (default 32) with 413, so larger requests are split. The key is optional: TEI only
checks one when started with `--api-key`. No usage is reported; tokens are estimated where a price is set.
"""

from __future__ import annotations

from typing import Any

from ..request import RerankRequest
from .base import Deployment, ProviderResult
from .families import ResultsFamily, passthrough_options


class HuggingFace(ResultsFamily):
    name = "huggingface"
    api_key_env = ("HUGGINGFACE_API_KEY",)
    api_base_env = ("HF_API_BASE", "HUGGINGFACE_API_BASE")
    requires_api_key = False
    requires_api_base = True
    max_documents_per_call = 32
    score_key = "score"
    options = ("truncate", "truncation_direction")

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        options = passthrough_options(request, deployment, *self.options)
        return {"query": request.query, "texts": list(request.texts), "raw_scores": False,
                "return_text": False, **options}

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        return super().parse({"results": data}, request)
