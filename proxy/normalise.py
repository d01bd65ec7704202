"""Provider scores + the original request → one Cohere response, the same way for every provider.

Sorted by score descending (ties by index), `top_n` applied here whatever the upstream did, documents
echoed from the request (objects whole in v1), `meta.billed_units` always present.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from operator import eq, itemgetter
from typing import Any

import orjson

from .errors import UpstreamMalformedError
from .pricing import search_units
from .providers import ProviderResult, Usage
from .request import RerankRequest
from .wire import RerankResponse

_INDEX, _SCORE, _EXTRA = itemgetter(0), itemgetter(1), itemgetter(2)  # `Scored` fields by position: C-level


def check_scores(result: ProviderResult, request: RerankRequest, provider: str) -> None:
    """The rerank invariants an upstream answer must meet: unique in-range indices, finite scores."""
    scores = result.scores
    if not scores:
        return
    indices = list(map(_INDEX, scores))
    if min(indices) < 0 or max(indices) >= len(request.documents) or len(set(indices)) != len(indices):
        seen: set[int] = set()
        for index in indices:  # the slow pass only to name the culprit
            if not 0 <= index < len(request.documents) or index in seen:
                raise UpstreamMalformedError(
                    f"{provider} returned an invalid or repeated document index {index}", provider=provider
                )
            seen.add(index)
    if not all(map(math.isfinite, map(_SCORE, scores))):
        raise UpstreamMalformedError(f"{provider} returned a non-finite score", provider=provider)


def _document(request: RerankRequest, index: int) -> dict[str, Any]:
    doc = request.documents[index]
    if isinstance(doc, str):
        return {"text": doc}
    if request.api_version == 1:
        return doc
    return {"text": request.texts[index]}


@dataclass(slots=True)
class Ranked:
    """A normalised answer: the Cohere JSON payload we send, with its usage and price.

    The server serialises `payload` as is; SDK users get the validated model from `to_response()`.
    """

    payload: dict[str, Any]
    usage: Usage
    search_units: float
    cost: Decimal = Decimal(0)
    deployment: str | None = None
    raw: bytes | None = None
    """The payload already serialised (a cached answer carries only this; `payload` is then empty)."""
    from_cache: int = 0
    """Documents whose score came from the result cache."""
    saved: Decimal = Decimal(0)
    """USD the result cache saved on this answer."""
    cache: str | None = None
    """hit | partial | miss when the result cache was asked; None when it was not."""

    def json_bytes(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.payload)

    def to_response(self) -> RerankResponse:
        payload = orjson.loads(self.raw) if self.raw is not None and not self.payload else self.payload
        response = RerankResponse.model_validate(payload)
        response._cost = self.cost
        response._deployment = self.deployment
        response._cache = self.cache
        return response


def normalise(request: RerankRequest, result: ProviderResult, cost: Decimal = Decimal(0),
              deployment: str | None = None, *, units: float | None = None) -> Ranked:
    """`units`: the billed search units when not those of `result.usage` over `request` (a cache-assisted
    call billed only for the documents it sent)."""
    # Sorted in C, best first (an O(n) sort for upstreams that answer best first). Ties go by index: when two
    # neighbours tie, sorted again after a first sort by index, which the stable sort by score keeps.
    scores = result.scores
    ranked = sorted(scores, key=_SCORE, reverse=True)
    ordered = list(map(_SCORE, ranked))
    if any(map(eq, ordered, islice(ordered, 1, None))):
        ranked = sorted(sorted(scores, key=_INDEX), key=_SCORE, reverse=True)
    if request.top_n is not None:
        ranked = ranked[: request.top_n]
    results: list[dict[str, Any]] = [{"index": index, "relevance_score": score} for index, score, _ in ranked]
    if request.return_documents or any(map(_EXTRA, ranked)):
        for entry, item in zip(results, ranked, strict=True):
            if item.extra:
                entry.update(item.extra)
            if request.return_documents:
                entry["document"] = _document(request, item.index)
    usage = result.usage
    if units is None:
        units = search_units(usage, request)
    billed: dict[str, Any] = {"search_units": units}
    if usage.total_tokens is not None:
        billed["total_tokens"] = usage.total_tokens
    meta: dict[str, Any] = {
        "api_version": {"version": "1"} if request.api_version == 1 else {"version": "2", "is_experimental": False},
        "billed_units": billed,
    }
    if usage.input_tokens is not None or usage.output_tokens is not None:
        meta["tokens"] = {k: v for k, v in (("input_tokens", usage.input_tokens),
                                            ("output_tokens", usage.output_tokens)) if v is not None}
    payload = {"id": result.upstream_id or str(uuid.uuid4()), "results": results, "meta": meta}
    return Ranked(payload, usage, units, cost, deployment)
