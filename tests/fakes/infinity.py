"""Fake Infinity: `POST /rerank`, Bearer auth only when the server has a key (`api_key=None`: none),
string documents, `results` whose `document` is a string or null, `usage`, OpenAI-style errors.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_n", "return_documents", "raw_scores"}


class FakeInfinity(FakeUpstream):
    provider = "infinity"

    def __init__(self, api_key: str | None = "test-key") -> None:
        super().__init__()
        self.api_key = api_key  # type: ignore[assignment]

    def route_paths(self) -> list[str]:
        return ["/rerank"]

    def check_auth(self, request: Request) -> None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "Incorrect API key")

    def error_body(self, status: int, message: str) -> Any:
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        return {"error": {"message": message, "type": kind, "param": None, "code": status}}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        query, texts, top_n = check_rerank_body(body, required={"query", "documents"}, allowed=FIELDS)
        give = body.get("return_documents", False)
        results = [{"relevance_score": score, "index": index, "document": texts[index] if give else None}
                   for index, score in ranked(query, texts, top_n)]
        tokens = token_count(query, texts)
        return JSONResponse({
            "object": "rerank", "results": results, "model": body.get("model", "default/not-specified"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "id": f"infinity-{uuid.uuid4()}", "created": int(time.time()),
        })
