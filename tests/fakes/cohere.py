"""Fake Cohere: `POST /v1/rerank` and `/v2/rerank`, Bearer auth, Cohere's fields, bodies and errors."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked, require_fields

V1_FIELDS = {"model", "query", "documents", "top_n", "rank_fields", "return_documents", "max_chunks_per_doc"}
V2_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority", "relevant_spans"}


class FakeCohere(FakeUpstream):
    provider = "cohere"

    def route_paths(self) -> list[str]:
        return ["/v1/rerank", "/v2/rerank"]

    def answer(self, path: str, body: Any, request: Request) -> Response:
        v2 = path.startswith("/v2")
        require_fields(body, {"query", "documents", "model"} if v2 else {"query", "documents"},
                       V2_FIELDS if v2 else V1_FIELDS)
        query, documents = body["query"], body["documents"]
        if not isinstance(query, str) or not query.strip():
            raise Reject(400, "invalid request: query must not be empty or be only whitespace")
        if not isinstance(documents, list) or not documents:
            raise Reject(400, "invalid request: list of documents must not be empty")
        if v2 and not all(isinstance(d, str) for d in documents):
            raise Reject(400, "invalid request: documents must be strings")
        fields = body.get("rank_fields") or ["text"]
        texts = [d if isinstance(d, str) else " ".join(str(d.get(f, "")) for f in fields) for d in documents]
        results = []
        for index, score in ranked(query, texts, body.get("top_n")):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if not v2 and body.get("return_documents"):
                doc = documents[index]
                item["document"] = {"text": doc} if isinstance(doc, str) else doc
            results.append(item)
        version = {"version": "2", "is_experimental": False} if v2 else {"version": "1"}
        return JSONResponse({
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": version, "billed_units": {"search_units": 1}},
        })
