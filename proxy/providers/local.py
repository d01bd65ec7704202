"""`local/bm25`: an offline ranker that needs no key, weights or network.

BM25 (k1=1.5, b=0.75) over words and word pairs of the request's own documents, so a new user can run the whole gateway
without a provider account, and every alias can fall back to something free.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Scored, Usage

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were what "
    "which who will with how when where why do does did".split()
)
K1, B = 1.5, 0.75


def tokenize(text: str) -> list[str]:
    """Lower-cased words without stop words, a trailing plural 's' dropped, plus adjacent-word pairs."""
    words = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def bm25_scores(query: str, texts: tuple[str, ...] | list[str]) -> list[float]:
    docs = [Counter(tokenize(text)) for text in texts]
    lengths = [sum(doc.values()) for doc in docs]
    average = (sum(lengths) / len(lengths)) or 1.0
    total = len(docs)
    scores = [0.0] * total
    for term in set(tokenize(query)):
        df = sum(1 for doc in docs if term in doc)
        if not df:
            continue
        idf = math.log((total - df + 0.5) / (df + 0.5) + 1.0)
        for i, doc in enumerate(docs):
            tf = doc.get(term)
            if tf:
                scores[i] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[i] / average))
    return scores


class Local(Provider):
    name = "local"
    requires_api_key = False
    in_process = True

    def rank(self, request: RerankRequest, deployment: Deployment) -> ProviderResult:
        if deployment.model not in ("bm25", ""):
            from ..errors import ModelNotFoundError

            raise ModelNotFoundError(f"local provider has no model '{deployment.model}'; use 'local/bm25'")
        raw = bm25_scores(request.query, request.texts)
        # s / (s + 1) maps [0, inf) onto [0, 1) and keeps the order.
        scores = [Scored(i, s / (s + 1.0)) for i, s in enumerate(raw)]
        tokens = sum(len(t) for t in request.texts) // 4 + len(request.query) // 4
        return ProviderResult(scores, Usage(search_units=0, input_tokens=tokens, total_tokens=tokens))

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:  # pragma: no cover - never called
        raise NotImplementedError("the local provider ranks in process")
