"""Fake Cohere: `POST /v1/rerank` and `/v2/rerank`, Bearer auth, Cohere's fields, bodies and errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Reject, ranked, require_fields

V1_FIELDS = {"model", "query", "documents", "top_n", "rank_fields", "return_documents", "max_chunks_per_doc"}
V2_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority", "relevant_spans"}


def check_spans_option(spans: Any) -> None:
    """Cohere's `relevant_spans`: `{mode: enabled|disabled, threshold?: 0..1, max_spans?: >= 1}`."""
    if spans is None:
        return
    if not isinstance(spans, dict) or spans.get("mode") not in ("enabled", "disabled") \
            or set(spans) - {"mode", "threshold", "max_spans"}:
        raise Reject(400, "invalid request: relevant_spans must be {mode: enabled|disabled, threshold, max_spans}")
    threshold, most = spans.get("threshold", 0.1), spans.get("max_spans")
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise Reject(400, "invalid request: relevant_spans.threshold must be between 0 and 1")
    if most is not None and (not isinstance(most, int) or most < 1):
        raise Reject(400, "invalid request: relevant_spans.max_spans must be a positive integer")


def relevant_spans(query: str, text: str, threshold: float, most: int | None) -> list[dict[str, Any]]:
    """Deterministic spans: the first occurrence of each query word (4+ letters) in the text, longer words
    scoring higher, best first, at or above `threshold`, at most `most`."""
    spans = []
    for word in {w.lower() for w in re.findall(r"\w{4,}", query)}:
        at = text.lower().find(word)
        if at >= 0:
            spans.append({"start": at, "end": at + len(word), "score": round(min(1.0, len(word) / 10), 3)})
    spans = sorted((s for s in spans if s["score"] >= threshold), key=lambda s: (-s["score"], s["start"]))
    return spans[:most] if most else spans


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
        priority, spans = body.get("priority"), body.get("relevant_spans")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or priority < 0):
            raise Reject(400, "invalid request: priority must be a non-negative integer")
        check_spans_option(spans)
        fields = body.get("rank_fields") or ["text"]
        texts = [d if isinstance(d, str) else " ".join(str(d.get(f, "")) for f in fields) for d in documents]
        results = []
        for index, score in ranked(query, texts, body.get("top_n")):
            item: dict[str, Any] = {"index": index, "relevance_score": score}
            if not v2 and body.get("return_documents"):
                doc = documents[index]
                item["document"] = {"text": doc} if isinstance(doc, str) else doc
            if spans and spans["mode"] == "enabled":
                found = relevant_spans(query, texts[index], spans.get("threshold", 0.1), spans.get("max_spans"))
                if found:
                    item["relevant_spans"] = found
            results.append(item)
        version = {"version": "2", "is_experimental": False} if v2 else {"version": "1"}
        return JSONResponse({
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": version, "billed_units": {"search_units": 1}},
        })
