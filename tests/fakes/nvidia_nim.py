"""Fake NVIDIA NIM reranking: the hosted `/v1/retrieval/{model}/reranking` route and the self-hosted
`/v1/ranking` route (which refuses `top_k`). Answers `rankings[{index, logit}]` sorted, with `usage`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked, require_fields

HOSTED = "/v1/retrieval/{model:path}/reranking"
SELF_HOSTED = "/v1/ranking"


class FakeNvidiaNim(FakeUpstream):
    provider = "nvidia_nim"
    api_key: str | None = "test-key"
    """None: a self-hosted NIM without authentication, which refuses any Authorization header it gets."""

    def route_paths(self) -> list[str]:
        return [HOSTED, SELF_HOSTED]

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "about:blank", "status": status, "title": "Error", "detail": message}

    def check_auth(self, request: Request) -> None:
        sent = request.headers.get("authorization")
        if sent != (f"Bearer {self.api_key}" if self.api_key else None):
            raise Reject(401, "Authentication failed")

    def answer(self, path: str, body: Any, request: Request) -> Response:
        hosted = path != SELF_HOSTED
        allowed = {"truncate", "top_k"} if hosted else {"truncate"}
        require_fields(body, {"model", "query", "passages"}, allowed)
        if hosted:
            url_model = path.removeprefix("/v1/retrieval/").removesuffix("/reranking")
            if "." in url_model or url_model.replace("_", ".") != body["model"]:
                raise Reject(404, f"Function for model '{url_model}' not found for account")
        query, passages = body["query"], body["passages"]
        if not isinstance(query, dict) or set(query) != {"text"} or not isinstance(query["text"], str):
            raise Reject(422, "query must be an object with a 'text' string")
        if not isinstance(passages, list) or not 1 <= len(passages) <= 512 or not all(
                isinstance(p, dict) and set(p) == {"text"} and isinstance(p["text"], str) for p in passages):
            raise Reject(422, "passages must hold 1 to 512 objects with a 'text' string")
        if body.get("truncate", "NONE") not in ("NONE", "END"):
            raise Reject(422, "truncate must be NONE or END")
        texts = [p["text"] for p in passages]
        # A logit: overlap in [0, 1] spread onto [-8, 8] so both signs occur.
        rankings = [{"index": i, "logit": round(score * 16 - 8, 4)}
                    for i, score in ranked(query["text"], texts, body.get("top_k"))]
        tokens = sum(len(t.split()) for t in texts) + len(query["text"].split()) * len(texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"rankings": rankings, "usage": usage})


def expected(fake: FakeNvidiaNim, query: str, documents: list[str], top_n: int | None) -> tuple[str, Any]:
    body: dict[str, Any] = {"model": "nvidia/llama-3.2-nv-rerankqa-1b-v2", "query": {"text": query},
                            "passages": [{"text": d} for d in documents]}
    if top_n is not None:
        body["top_k"] = top_n
    return "/v1/retrieval/nvidia/llama-3_2-nv-rerankqa-1b-v2/reranking", body
