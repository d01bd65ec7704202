"""Fake Jina AI: `POST /v1/rerank`, Bearer auth, Jina's fields, `results` + `usage.total_tokens`.

Documents may be strings or `{"text": ...}`; documents are returned unless `return_documents` is false.
Errors are `{"detail": ...}` (the shape is not confirmed by Jina's docs).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_n", "return_documents"}


class FakeJinaAI(FakeUpstream):
    provider = "jina_ai"

    def route_paths(self) -> list[str]:
        return ["/v1/rerank"]

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        query, texts, top_n = check_rerank_body(body, required={"model", "query", "documents"},
                                                allowed=FIELDS, status=422, text_objects=True)
        results = []
        for index, score in ranked(query, texts, top_n):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.get("return_documents", True):
                item["document"] = {"text": texts[index]}
            results.append(item)
        return JSONResponse({"model": body["model"], "usage": {"total_tokens": token_count(query, texts)},
                             "results": results})
