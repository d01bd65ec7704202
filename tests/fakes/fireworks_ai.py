"""Fake Fireworks AI: `POST /inference/v1/rerank`, Bearer auth, the OpenAPI's closed field set
(`additionalProperties: false`), a `data` list (documents as strings, returned by default) and `usage`.

`answer_with_results = True` makes it answer with a `results` list instead, as LiteLLM says it may.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "task"}


class FakeFireworksAI(FakeUpstream):
    provider = "fireworks_ai"
    answer_with_results = False

    def route_paths(self) -> list[str]:
        return ["/inference/v1/rerank"]

    def model_of(self, path: str, body: Any) -> str:
        return super().model_of(path, body).removeprefix("fireworks/")

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"object": "error", "type": "invalid_request_error", "message": message}}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        query, texts, top_n = check_rerank_body(body, required={"query", "documents"}, allowed=FIELDS)
        model = body.get("model")
        if model is not None and not model.startswith(("accounts/", "fireworks/")):
            raise Reject(404, f"Model not found, inaccessible, and/or not deployed: {model}")
        if model is not None and model.startswith("fireworks/accounts/"):
            raise Reject(404, f"Model not found, inaccessible, and/or not deployed: {model}")
        items = []
        for index, score in ranked(query, texts, top_n):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.get("return_documents", True):
                item["document"] = texts[index]
            items.append(item)
        tokens = token_count(query, texts)
        return JSONResponse({"object": "list", "model": model or "fireworks/qwen3-reranker-8b",
                             "results" if self.answer_with_results else "data": items,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
