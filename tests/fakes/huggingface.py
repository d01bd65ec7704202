"""Fake HuggingFace Text Embeddings Inference: `POST /rerank`, a bare list, `{error, error_type}` errors.

Like a TEI started with `--api-key` and the default `--max-client-batch-size 32`. Real TEI ignores unknown
body fields; this fake refuses them (422) so a field we should not send shows up in tests.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked

FIELDS = {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}
MAX_CLIENT_BATCH_SIZE = 32
_ERROR_TYPES = {400: "Empty", 401: "Unauthorized", 403: "Unauthorized", 413: "Validation", 422: "Tokenizer",
                424: "Backend", 429: "Overloaded", 500: "Backend", 503: "Unhealthy"}


class FakeHuggingFace(FakeUpstream):
    provider = "huggingface"
    api_key: str | None = "test-key"

    def route_paths(self) -> list[str]:
        return ["/rerank"]

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "error_type": _ERROR_TYPES.get(status, "Backend")}

    def model_of(self, path: str, body: Any) -> str:
        return ""  # TEI serves one model: faults are scripted with fail_next only

    def malformed_body(self) -> Any:
        return {"results": "not a list"}

    def check_auth(self, request: Request) -> None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "Unauthorized")

    def answer(self, path: str, body: Any, request: Request) -> Response:
        if not isinstance(body, dict) or body.keys() - FIELDS or not {"query", "texts"} <= body.keys():
            raise Reject(422, "Failed to deserialize the JSON body into the target type")
        texts = body["texts"]
        if not isinstance(body["query"], str) or not isinstance(texts, list) \
                or not all(isinstance(t, str) for t in texts):
            raise Reject(422, "Failed to deserialize the JSON body into the target type")
        if not texts:
            raise Reject(400, "`texts` cannot be empty")
        if len(texts) > MAX_CLIENT_BATCH_SIZE:
            raise Reject(413, f"batch size {len(texts)} > maximum allowed batch size {MAX_CLIENT_BATCH_SIZE}")
        for name in ("raw_scores", "return_text"):
            if not isinstance(body.get(name, False), bool):
                raise Reject(422, f"`{name}` must be a boolean")
        items = []
        for index, score in ranked(body["query"], texts):
            item: dict[str, Any] = {"index": index, "score": score}
            if body.get("return_text"):
                item["text"] = texts[index]
            items.append(item)
        return JSONResponse(items)


def expected(fake: FakeHuggingFace, query: str, documents: list[str], top_n: int | None) -> tuple[str, Any]:
    return "/rerank", {"query": query, "texts": documents, "raw_scores": False, "return_text": False}
