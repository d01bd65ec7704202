"""Cache keys: 128-bit cryptographic digests of exactly what changes the cached value (a tenant cannot craft a
request whose key collides with another's).

An answer key covers everything that changes the answer (the alias that served it, the API version, the
query, the documents as given, `top_n`, `rank_fields`, `return_documents`, the chunk and token options,
provider pass-through parameters, `priority`, `relevant_spans`, unknown fields' names). A score key covers
what changes one document's score: the deployment's provider, model, endpoint and options, the
score-changing request options (`relevant_spans` too: spans are kept with the score), the query and the
document's text as sent upstream; the shared part is hashed once per request and used as the BLAKE2b key of
every document's digest (C-level loops only: about 1 µs a document). An answer key hashes the whole request
once, with BLAKE3 (~40 µs for 1,000 documents of 50 words, where BLAKE2b took ~270 µs: a full hit's largest
cost).
"""

from __future__ import annotations

import json
from functools import partial
from hashlib import blake2b
from operator import methodcaller
from typing import Any

import orjson
from blake3 import blake3

from ..providers import Deployment
from ..request import RerankRequest

DIGEST = 16
_HEX = methodcaller("hexdigest")


def _blob(value: Any, option: int = orjson.OPT_NON_STR_KEYS) -> bytes:
    """`value` as JSON bytes; what orjson refuses (integers wider than 64 bits in an object document) through
    the standard library."""
    try:
        return orjson.dumps(value, option=option, default=str)
    except TypeError:
        return json.dumps(value, default=str, sort_keys=bool(option & orjson.OPT_SORT_KEYS)).encode()


def answer_key(namespace: str, alias: str, request: RerankRequest) -> str:
    blob = _blob((
        alias, request.api_version, request.query, request.documents, request.top_n, request.rank_fields,
        request.return_documents, request.max_chunks_per_doc, request.max_tokens_per_doc, request.params,
        request.priority, request.relevant_spans, request.unknown,
    ))
    return f"{namespace}a:{blake3(blob).hexdigest(length=DIGEST)}"


def score_keys(namespace: str, deployment: Deployment, request: RerankRequest) -> list[str]:
    shared = blake2b(_blob((
        deployment.provider.name, deployment.model, deployment.api_base, deployment.params,
        request.max_chunks_per_doc, request.max_tokens_per_doc, request.params, request.query, request.relevant_spans,
    ), orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS), digest_size=32).digest()
    digest = partial(blake2b, digest_size=DIGEST, key=shared)
    return list(map(f"{namespace}s:".__add__, map(_HEX, map(digest, map(str.encode, request.texts)))))
