"""Usage × price → cost, in exact decimals.

Two units: per search unit (one query over up to 100 documents, when the provider does not say) and
per token. A per-token model is priced from the provider's token count, or an estimate of it, never $0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from .providers import Deployment, Usage
from .request import RerankRequest

DOCUMENTS_PER_SEARCH_UNIT = 100


@dataclass(frozen=True, slots=True)
class Price:
    per_query: Decimal = Decimal(0)
    per_token: Decimal = Decimal(0)


def _p(per_query: str = "0", per_token: str = "0") -> Price:
    return Price(Decimal(per_query), Decimal(per_token))


# Built-in prices (USD) for the rerank models we know, keyed by (provider, model).
PRICES: dict[tuple[str, str], Price] = {
    ("cohere", "rerank-english-v3.0"): _p("0.002"),
    ("cohere", "rerank-multilingual-v3.0"): _p("0.002"),
    ("cohere", "rerank-v3.5"): _p("0.002"),
    ("cohere", "rerank-v4.0-fast"): _p("0.002"),
    ("cohere", "rerank-v4.0-pro"): _p("0.0025"),
    ("cohere", "rerank-v5.0-fast"): _p(per_token="0.00000002"),
    ("cohere", "rerank-v5.0-pro"): _p(per_token="0.00000005"),
    ("azure_ai", "cohere-rerank-v4.0-fast"): _p("0.002"),
    ("azure_ai", "cohere-rerank-v4.0-pro"): _p("0.0025"),
    ("azure_ai", "cohere-rerank-v5-fast"): _p(per_token="0.00000002"),
    ("azure_ai", "cohere-rerank-v5-pro"): _p(per_token="0.00000005"),
    ("bedrock", "amazon.rerank-v1:0"): _p("0.001"),
    ("bedrock", "cohere.rerank-v3-5:0"): _p("0.002"),
    ("jina_ai", "jina-reranker-m0"): _p(per_token="0.00000005"),
    ("jina_ai", "jina-reranker-v2-base-multilingual"): _p(per_token="0.00000005"),
    ("jina_ai", "jina-reranker-v3.5"): _p(per_token="0.00000005"),
    **{("voyage", m): _p(per_token="0.00000005") for m in ("rerank-1", "rerank-2", "rerank-2.5", "rerank-3")},
    **{("voyage", m): _p(per_token="0.00000002")
       for m in ("rerank-lite-1", "rerank-2-lite", "rerank-2.5-lite", "rerank-3-lite")},
    ("together_ai", "Salesforce/Llama-Rank-V1"): _p(per_token="0.0000001"),
    # Fireworks takes `accounts/fireworks/models/<name>` or `fireworks/<name>`; a bare name means the latter.
    **{("fireworks_ai", prefix + name): price
       for name, price in (("qwen3-reranker-8b", _p(per_token="0.0000002")), ("qwen3-reranker-4b", _p()),
                           ("qwen3-reranker-0p6b", _p()))
       for prefix in ("accounts/fireworks/models/", "fireworks/", "")},
    **{("vertex_ai", m): _p("0.001") for m in (
        "semantic-ranker-default", "semantic-ranker-default-002", "semantic-ranker-default-003",
        "semantic-ranker-default-004", "semantic-ranker-default@latest", "semantic-ranker-fast",
        "semantic-ranker-fast-004", "semantic-ranker-fast@latest")},
    ("nvidia_nim", "nvidia/llama-3_2-nv-rerankqa-1b-v2"): _p(),
    ("nvidia_nim", "nvidia/nv-rerankqa-mistral-4b-v3"): _p(),
    ("nvidia_nim", "ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2"): _p(),
    ("deepinfra", "Qwen/Qwen3-Reranker-0.6B"): _p(per_token="0.00000001"),
    ("deepinfra", "Qwen/Qwen3-Reranker-8B"): _p(per_token="0.00000005"),
}


# Model ids compared without case as a fallback: Azure AI Foundry names deployments `Cohere-rerank-v4.0-pro`.
_PRICES_FOLDED: dict[tuple[str, str], Price] = {(p, m.lower()): price for (p, m), price in PRICES.items()}


def _lookup_key(model: str) -> str:
    # Bedrock ARNs: arn:aws:bedrock:<region>::foundation-model/<id> is priced as <id>.
    return model.rsplit("foundation-model/", 1)[-1]


def price_for(deployment: Deployment) -> Price:
    return _price(deployment.provider.name, deployment.model, deployment.input_cost_per_query,
                  deployment.input_cost_per_token)


@lru_cache(maxsize=1024)
def _price(provider: str, model: str, per_query: Decimal | None, per_token: Decimal | None) -> Price:
    """The configured price, else the built-in one (found once per deployment, not on every call)."""
    key = (provider, _lookup_key(model))
    builtin = PRICES.get(key) or _PRICES_FOLDED.get((key[0], key[1].lower()), Price())
    return Price(per_query=per_query if per_query is not None else builtin.per_query,
                 per_token=per_token if per_token is not None else builtin.per_token)


def estimate_tokens(request: RerankRequest) -> int:
    """About four characters a token: the query is read once per document, as rerankers do."""
    query = len(request.query) // 4 + 1
    return sum(query + len(text) // 4 + 1 for text in request.texts)


def search_units(usage: Usage, request: RerankRequest) -> float:
    if usage.search_units:
        return usage.search_units
    return float(math.ceil(len(request.documents) / DOCUMENTS_PER_SEARCH_UNIT))


def cost(usage: Usage, request: RerankRequest, price: Price) -> Decimal:
    total = Decimal(0)
    if price.per_query:
        total += price.per_query * Decimal(str(search_units(usage, request)))
    if price.per_token:
        tokens = usage.tokens if usage.tokens is not None else estimate_tokens(request)
        total += price.per_token * Decimal(tokens)
    return total
