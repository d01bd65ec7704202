"""Fake Together AI: `POST /v1/rerank`, Bearer auth, Together's fields, `results` + `usage`, and
OpenAI-style errors (`{"error": {message, type, param, code}}`).

Object documents are accepted with `rank_fields` (LlamaRank); their `document.text` is the JSON of the object.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "rank_fields"}


class FakeTogetherAI(FakeUpstream):
    provider = "together_ai"

    def route_paths(self) -> list[str]:
        return ["/v1/rerank"]

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        fields = body.get("rank_fields")
        documents = body.get("documents")
        if fields is not None:
            if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
                raise Reject(400, "rank_fields must be a non-empty list of strings")
            if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
                raise Reject(400, "rank_fields needs object documents")
            originals = documents
            body = {**body, "documents": [json.dumps({f: d.get(f) for f in fields}) for d in documents]}
        else:
            originals = None
        query, texts, top_n = check_rerank_body(body, required={"model", "query", "documents"},
                                                allowed=FIELDS)
        results = []
        for index, score in ranked(query, texts, top_n):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.get("return_documents"):
                text = texts[index] if originals is None else json.dumps(originals[index])
                item["document"] = {"text": text}
            results.append(item)
        tokens = token_count(query, texts)
        return JSONResponse({
            "object": "rerank", "id": uuid.uuid4().hex, "model": body["model"], "results": results,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
        })
