"""Fake DeepInfra inference API: `POST /v1/inference/{model}`, parallel `queries`/`documents`.

Scores come back in input order with `input_tokens` and `inference_status`; errors are
`{"detail": {"error": ...}}`, or `{"detail": "..."}` for authentication.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, overlap_score, require_fields

PREFIX = "/v1/inference/"


class FakeDeepInfra(FakeUpstream):
    provider = "deepinfra"

    def route_paths(self) -> list[str]:
        return [PREFIX + "{model:path}"]

    def model_of(self, path: str, body: Any) -> str:
        return path.removeprefix(PREFIX)

    def error_body(self, status: int, message: str) -> Any:
        return {"detail": message} if status in (401, 403) else {"detail": {"error": message}}

    def check_auth(self, request: Request) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key != self.api_key:
            raise Reject(401, "Unauthorized")

    def answer(self, path: str, body: Any, request: Request) -> Response:
        require_fields(body, {"queries", "documents"}, {"instruction", "service_tier", "webhook"})
        queries, documents = body["queries"], body["documents"]
        if not all(isinstance(v, list) and v and all(isinstance(s, str) for s in v)
                   for v in (queries, documents)):
            raise Reject(422, "queries and documents must be non-empty lists of strings")
        if len(queries) != len(documents):
            raise Reject(422, "queries and documents must have the same length")
        tokens = sum(len(q.split()) + len(d.split()) for q, d in zip(queries, documents, strict=True))
        return JSONResponse({
            "scores": [overlap_score(q, d) for q, d in zip(queries, documents, strict=True)],
            "input_tokens": tokens,
            "request_id": str(uuid.uuid4()),
            "inference_status": {"status": "succeeded", "runtime_ms": 12, "cost": tokens * 5e-8,
                                 "tokens_generated": 0, "tokens_input": tokens},
        })


def expected(fake: FakeDeepInfra, query: str, documents: list[str], top_n: int | None) -> tuple[str, Any]:
    return PREFIX + "Qwen/Qwen3-Reranker-8B", {"queries": [query] * len(documents), "documents": documents}
