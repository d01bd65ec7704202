"""Fake vLLM: `POST /rerank` (and `/v1/rerank`, `/v2/rerank`), Bearer only when started with `--api-key`
(`api_key=None`: none), `top_n` 0 meaning all, `results` with `document` always, `usage`, vLLM's errors.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked
from .body_checks import check_rerank_body, token_count

FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "max_tokens_per_query",
          "truncate_prompt_tokens", "truncation_side", "use_activation", "priority", "request_id", "user"}


class FakeHostedVLLM(FakeUpstream):
    provider = "hosted_vllm"

    def __init__(self, api_key: str | None = "test-key") -> None:
        super().__init__()
        self.api_key = api_key  # type: ignore[assignment]

    def route_paths(self) -> list[str]:
        return ["/rerank", "/v1/rerank", "/v2/rerank"]

    def check_auth(self, request: Request) -> None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "Unauthorized")

    def error_body(self, status: int, message: str) -> Any:
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        return {"error": {"message": message, "type": kind, "param": None, "code": status}}

    def answer(self, path: str, body: Any, request: Request) -> Response:
        # vLLM logs and ignores unknown fields; this fake refuses them so the proxy sends only real ones.
        query, texts, top_n = check_rerank_body(body, required={"query", "documents"}, allowed=FIELDS,
                                                min_top=0)
        for name in ("max_tokens_per_doc", "max_tokens_per_query", "truncate_prompt_tokens"):
            if name in body and (isinstance(body[name], bool) or not isinstance(body[name], int)):
                raise Reject(400, f"{name} must be an integer")
        results = [{"index": index, "document": {"text": texts[index]}, "relevance_score": score}
                   for index, score in ranked(query, texts, top_n)]
        tokens = token_count(query, texts)
        return JSONResponse({"id": f"rerank-{uuid.uuid4().hex}", "model": body.get("model", "served-model"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}, "results": results})
