"""Fake Voyage AI: `POST /v1/rerank`, Bearer auth, Voyage's fields (`top_k`, `truncation`), at most 1,000
documents, a `data` list + `usage.total_tokens`, errors as `{"detail": ...}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_k", "return_documents", "truncation"}


class FakeVoyage(FakeUpstream):
    provider = "voyage"

    def route_paths(self) -> list[str]:
        return ["/v1/rerank"]

    def check_auth(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "Provided API key is invalid.")

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        query, texts, top_k = check_rerank_body(body, required={"model", "query", "documents"},
                                                allowed=FIELDS, top_field="top_k", max_documents=1000)
        items = []
        for index, score in ranked(query, texts, top_k):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.get("return_documents", False):
                item["document"] = texts[index]
            items.append(item)
        return JSONResponse({"object": "list", "data": items, "model": body["model"],
                             "usage": {"total_tokens": token_count(query, texts)}})
