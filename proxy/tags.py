"""A request's tags, by LiteLLM's rules: the body's `metadata.tags`, the `x-litellm-tags` header
(comma-separated), the key's and its team's `tags` (or `metadata.tags`), and the serving deployment's
`litellm_params.tags`. They go on the spend row, count against tag budgets and group reports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import InvalidRequestError

MAX_TAGS = 32
MAX_TAG_LENGTH = 256


def request_tags(metadata: dict[str, Any] | None, header: str | None) -> list[str]:
    """The tags a request names itself; 400 naming the field when they are not short strings."""
    tags: list[str] = []
    body_tags = (metadata or {}).get("tags")
    if body_tags is not None:
        if not isinstance(body_tags, list) or not all(isinstance(t, str) for t in body_tags):
            raise InvalidRequestError("metadata.tags must be a list of strings")
        tags.extend(body_tags)
    if header:
        tags.extend(t.strip() for t in header.split(","))
    tags = [t for t in tags if t]
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_LENGTH for t in tags):
        raise InvalidRequestError(f"at most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters each "
                                  "(metadata.tags and x-litellm-tags)")
    return tags


def configured_tags(record: Any) -> list[str]:
    """A key's or team's own tags: its `tags`, then `metadata.tags` (where LiteLLM keeps them)."""
    if record is None:
        return []
    found = list(getattr(record, "tags", None) or ())
    meta = getattr(record, "metadata", None) or {}
    if isinstance(meta.get("tags"), list):
        found.extend(t for t in meta["tags"] if isinstance(t, str))
    return found


def merged(*sources: Iterable[str]) -> tuple[str, ...]:
    """Every tag once, in first-seen order."""
    return tuple(dict.fromkeys(t for source in sources for t in source))


def deployment_tags(params: dict[str, Any]) -> list[str]:
    tags = params.get("tags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
