"""The validated, provider-neutral rerank request every provider builds from.

Validation happens here, once, before any upstream call, with Cohere's wording where Cohere has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import InvalidRequestError

MAX_DOCUMENTS = 10_000
MAX_TOTAL_CHUNKS = 10_000
OPTIONS = ("max_chunks_per_doc", "max_tokens_per_doc", "priority", "relevant_spans")
"""Cohere request options some providers cannot honour (`rank_fields` and `return_documents` work everywhere)."""


@dataclass(slots=True)
class RerankRequest:
    query: str
    documents: tuple[str | dict[str, Any], ...]
    texts: tuple[str, ...]
    """The text of each document that is ranked (after `rank_fields`)."""
    top_n: int | None = None
    return_documents: bool = False
    rank_fields: tuple[str, ...] | None = None
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    api_version: int = 2
    """Which Cohere API the caller speaks (1 or 2); decides the response shape."""
    params: dict[str, Any] = field(default_factory=dict)
    """Provider-specific pass-through parameters (e.g. `instruction`, `truncate`)."""
    cache: Any = None
    """How this request uses the result cache (`cache.config.CacheUse`); None: it does not."""
    priority: int | None = None
    relevant_spans: dict[str, Any] | None = None
    options: tuple[str, ...] = ()
    """The names of the Cohere options (`OPTIONS`) and provider options (`params`) set: a provider that does not
    take one drops it, with a warning."""
    unknown: tuple[str, ...] = ()
    """Body fields that mean nothing here: ignored, each named in the answer's `meta.warnings`."""

    @property
    def uses_v1_fields(self) -> bool:
        return self.rank_fields is not None or self.max_chunks_per_doc is not None

    @property
    def has_object_documents(self) -> bool:
        return any(isinstance(d, dict) for d in self.documents)

    def with_query(self, query: str) -> RerankRequest:
        return replace(self, query=query)

    def subset(self, start: int, stop: int) -> RerankRequest:
        """The same request over documents[start:stop] (indices restart at 0), without `top_n`."""
        return replace(self, documents=self.documents[start:stop], texts=self.texts[start:stop], top_n=None)

    def pick(self, indices: list[int] | None) -> RerankRequest:
        """The same request over the documents at `indices` (all when None), renumbered from 0, without
        `top_n` (every score is wanted) and without the cache."""
        if indices is None:
            return replace(self, top_n=None, cache=None)
        documents, texts = self.documents, self.texts
        return replace(self, documents=tuple(documents[i] for i in indices), texts=tuple(texts[i] for i in indices),
                       top_n=None, cache=None)


def _document_text(doc: str | dict[str, Any], rank_fields: tuple[str, ...] | None, position: int) -> str:
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        raise InvalidRequestError(f"invalid request: documents[{position}] must be a string or an object")
    if rank_fields:
        parts = []
        for name in rank_fields:
            if name not in doc:
                raise InvalidRequestError(
                    f"invalid request: rank_field '{name}' is missing from documents[{position}]"
                )
            parts.append(f"{name}: {_stringify(doc[name])}")
        return "\n".join(parts)
    text = doc.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(
            f"invalid request: documents[{position}] is an object without a 'text' string; "
            "add 'text' or name the fields to rank with rank_fields"
        )
    return text


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def make_request(
    query: Any,
    documents: Any,
    *,
    top_n: int | None = None,
    return_documents: bool | None = None,
    rank_fields: list[str] | tuple[str, ...] | None = None,
    max_chunks_per_doc: int | None = None,
    max_tokens_per_doc: int | None = None,
    api_version: int | None = None,
    max_documents: int = MAX_DOCUMENTS,
    params: dict[str, Any] | None = None,
    priority: int | None = None,
    relevant_spans: dict[str, Any] | None = None,
    unknown: tuple[str, ...] = (),
) -> RerankRequest:
    """Check a rerank call the way Cohere does and return its provider-neutral form.

    `api_version` is the Cohere API the caller speaks; when not given (the SDK), v1 answers are chosen for
    calls that use v1-only features (object documents, `rank_fields`), so object documents echo whole.
    """
    if not isinstance(query, str):
        raise InvalidRequestError("invalid request: query must be a string")
    if not query.strip():
        raise InvalidRequestError("invalid request: query must not be empty or be only whitespace")
    if not isinstance(documents, (list, tuple)):
        raise InvalidRequestError("invalid request: documents must be a list")
    if not documents:
        raise InvalidRequestError("invalid request: list of documents must not be empty")
    if len(documents) > max_documents:
        raise InvalidRequestError(
            f"invalid request: too many documents ({len(documents)}); at most {max_documents} are allowed"
        )
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidRequestError("invalid request: top_n must be a positive integer")
    if rank_fields is not None and len(rank_fields) == 0:
        raise InvalidRequestError("invalid request: rank_fields cannot be empty, omit it to rank on 'text'")
    if max_chunks_per_doc is not None:
        if max_chunks_per_doc < 1:
            raise InvalidRequestError("invalid request: max_chunks_per_doc must be a positive integer")
        if max_chunks_per_doc * len(documents) >= MAX_TOTAL_CHUNKS:
            raise InvalidRequestError(
                "invalid request: number of total max chunks (length of documents * max_chunks_per_doc) "
                f"must be less than {MAX_TOTAL_CHUNKS}"
            )
    if max_tokens_per_doc is not None and max_tokens_per_doc < 1:
        raise InvalidRequestError("invalid request: max_tokens_per_doc must be a positive integer")
    fields = tuple(rank_fields) if rank_fields is not None else None
    docs = tuple(documents)
    if fields is None and set(map(type, docs)) == {str}:
        texts = docs  # the common case: plain strings are their own text
    else:
        texts = tuple(_document_text(doc, fields, i) for i, doc in enumerate(docs))
    request = RerankRequest(
        query=query,
        documents=docs,
        texts=texts,
        top_n=top_n,
        return_documents=bool(return_documents),
        rank_fields=fields,
        max_chunks_per_doc=max_chunks_per_doc,
        max_tokens_per_doc=max_tokens_per_doc,
        api_version=api_version or (1 if fields or any(isinstance(d, dict) for d in docs) else 2),
        params=dict(params or {}),
    )
    if max_chunks_per_doc is not None or max_tokens_per_doc is not None or priority is not None \
            or relevant_spans is not None or params or unknown:  # set only when given: the common path stays short
        values = (max_chunks_per_doc, max_tokens_per_doc, priority, relevant_spans)
        request.options = (*(name for name, value in zip(OPTIONS, values, strict=True) if value is not None),
                           *(params or ()))
        request.priority, request.relevant_spans, request.unknown = priority, relevant_spans, unknown
    return request
