"""Provider scores + the original request → one Cohere response, the same way for every provider.

Sorted by score descending (ties by index), `top_n` applied here whatever the upstream did, documents
echoed from the request (objects whole in v1), `meta.billed_units` always present.
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal

from .errors import UpstreamMalformedError
from .pricing import search_units
from .providers import ProviderResult
from .request import RerankRequest
from .wire import ApiVersion, BilledUnits, Meta, RerankDocument, RerankResponse, RerankResult, Tokens


def check_scores(result: ProviderResult, request: RerankRequest, provider: str) -> None:
    """The rerank invariants an upstream answer must meet: unique in-range indices, finite scores."""
    seen: set[int] = set()
    total = len(request.documents)
    for item in result.scores:
        if not 0 <= item.index < total or item.index in seen:
            raise UpstreamMalformedError(
                f"{provider} returned an invalid or repeated document index {item.index}", provider=provider
            )
        if not math.isfinite(item.score):
            raise UpstreamMalformedError(f"{provider} returned a non-finite score", provider=provider)
        seen.add(item.index)


def _document(request: RerankRequest, index: int) -> RerankDocument:
    doc = request.documents[index]
    if isinstance(doc, str):
        return RerankDocument(text=doc)
    if request.api_version == 1:
        return RerankDocument(**doc)
    return RerankDocument(text=request.texts[index])


def normalise(request: RerankRequest, result: ProviderResult, cost: Decimal = Decimal(0),
              deployment: str | None = None) -> RerankResponse:
    ranked = sorted(result.scores, key=lambda s: (-s.score, s.index))
    if request.top_n is not None:
        ranked = ranked[: request.top_n]
    results = []
    for item in ranked:
        fields = dict(item.extra) if item.extra else {}
        if request.return_documents:
            fields["document"] = _document(request, item.index)
        results.append(RerankResult.model_construct(index=item.index, relevance_score=item.score, **fields))
    usage = result.usage
    version = ApiVersion(version="1") if request.api_version == 1 else ApiVersion(version="2",
                                                                                 is_experimental=False)
    billed = BilledUnits(search_units=search_units(usage, request))
    if usage.total_tokens is not None:
        billed.total_tokens = usage.total_tokens
    tokens = None
    if usage.input_tokens is not None or usage.output_tokens is not None:
        tokens = Tokens(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    # Built with model_construct: every value above is already checked, and validation would double the cost.
    response = RerankResponse.model_construct(
        id=result.upstream_id or str(uuid.uuid4()),
        results=results,
        meta=Meta.model_construct(api_version=version, billed_units=billed, tokens=tokens),
    )
    response._cost = cost
    response._deployment = deployment
    return response
