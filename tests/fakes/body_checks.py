"""Strict request-body checks shared by the fakes of Cohere-like rerank APIs (Together, Jina, Voyage, ...).

Each fake states its own fields, status and document rules; this only applies them.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Reject

_WORD = re.compile(r"\w+")


def check_rerank_body(
    body: dict[str, Any],
    *,
    required: set[str],
    allowed: set[str],
    status: int = 400,
    top_field: str = "top_n",
    min_top: int = 1,
    text_objects: bool = False,
    max_documents: int | None = None,
) -> tuple[str, list[str], int | None]:
    """Refuse what the provider refuses; return (query, document texts, top) for scoring.

    `text_objects` also admits `{"text": ...}` documents (Jina); otherwise documents must be strings.
    """
    missing = required - body.keys()
    if missing:
        raise Reject(status, f"missing field(s): {', '.join(sorted(missing))}")
    unknown = body.keys() - allowed - required
    if unknown:
        raise Reject(status, f"unknown field(s): {', '.join(sorted(unknown))}")
    if "model" in body and not isinstance(body["model"], str):
        raise Reject(status, "model must be a string")
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query.strip():
        raise Reject(status, "query must be a non-empty string")
    if not isinstance(documents, list) or not documents:
        raise Reject(status, "documents must be a non-empty list")
    if max_documents is not None and len(documents) > max_documents:
        raise Reject(status, f"the number of documents cannot exceed {max_documents}")
    texts = []
    for doc in documents:
        if text_objects and isinstance(doc, dict) and set(doc) == {"text"} and isinstance(doc["text"], str):
            doc = doc["text"]
        if not isinstance(doc, str):
            raise Reject(status, "each document must be a string")
        texts.append(doc)
    top = body.get(top_field)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < min_top):
        raise Reject(status, f"{top_field} must be an integer >= {min_top}")
    for flag in ("return_documents", "raw_scores", "truncation"):
        if flag in body and not isinstance(body[flag], bool):
            raise Reject(status, f"{flag} must be a boolean")
    return query, texts, top or None


def token_count(query: str, texts: list[str]) -> int:
    """A deterministic token count for usage: words of the query once per document, plus each document's."""
    q = len(_WORD.findall(query))
    return sum(q + len(_WORD.findall(text)) for text in texts)
