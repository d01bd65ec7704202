"""The result cache: whole answers and per-document scores, in this process or in Redis."""

from __future__ import annotations

import os
from typing import Any

from .config import CacheParams, CacheUse
from .results import ResultCache
from .stores import LocalStore, RedisStore


def Cache(type: str = "local", **params: Any) -> ResultCache:  # noqa: N802 - LiteLLM's `litellm.Cache(...)`
    """A result cache for the SDK, with `cache_params`' keys: `Cache()` (in this process),
    `Cache(type="redis", url=...)` (or `host`, `port`, `password`; else `REDIS_URL` from the environment).

    Pass it as `rerank(..., cache=...)` or set it as `proxy.cache` for every call.
    """
    settings = CacheParams(type=type, **params)
    if settings.type == "redis" and not settings.redis_url():
        url = os.environ.get("REDIS_URL")
        if not url:
            raise ValueError("Cache(type='redis') needs url= (or host=), or REDIS_URL in the environment")
        settings = settings.model_copy(update={"url": url})
    return ResultCache.from_params(settings)


__all__ = ["Cache", "CacheParams", "CacheUse", "LocalStore", "RedisStore", "ResultCache"]
