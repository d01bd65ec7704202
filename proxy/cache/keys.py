"""Cache keys: 128-bit BLAKE2b digests of exactly what changes the cached value.

An answer key covers everything that changes the answer (the alias that served it, the API version, the
query, the documents as given, `top_n`, `rank_fields`, `return_documents`, the chunk and token options,
provider pass-through parameters, `priority` and `relevant_spans`). A score key covers what changes one
document's score: the deployment's provider, model, endpoint and options, the score-changing request options
(`relevant_spans` too: spans are kept with the score), the query and the document's text as sent upstream;
the shared part is hashed once per request and used as the BLAKE2b key of every document's digest (C-level
loops only: about 1 µs a document).
"""

from __future__ import annotations

from functools import partial
from hashlib import blake2b
from operator import methodcaller

import orjson

from ..providers import Deployment
from ..request import RerankRequest

DIGEST = 16


def _digest(blob: bytes) -> str:
    return blake2b(blob, digest_size=DIGEST).hexdigest()


_HEX = methodcaller("hexdigest")


def answer_key(namespace: str, alias: str, request: RerankRequest) -> str:
    blob = orjson.dumps((
        alias, request.api_version, request.query, request.documents, request.top_n, request.rank_fields,
        request.return_documents, request.max_chunks_per_doc, request.max_tokens_per_doc, request.params,
        request.priority, request.relevant_spans,
    ), option=orjson.OPT_NON_STR_KEYS)
    return f"{namespace}a:{_digest(blob)}"


def score_keys(namespace: str, deployment: Deployment, request: RerankRequest) -> list[str]:
    shared = blake2b(orjson.dumps((
        deployment.provider.name, deployment.model, deployment.api_base, deployment.params,
        request.max_chunks_per_doc, request.max_tokens_per_doc, request.params, request.query, request.relevant_spans,
    ), option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS, default=str), digest_size=32).digest()
    digest = partial(blake2b, digest_size=DIGEST, key=shared)
    return list(map(f"{namespace}s:".__add__, map(_HEX, map(digest, map(str.encode, request.texts)))))
