"""`litellm_settings.cache_params` (LiteLLM's shape) and the per-request controls that narrow it.

Per request, LiteLLM's body field `cache: {"no-cache": true, "no-store": true, "ttl": N, "namespace": "x"}`
and the `Cache-Control: no-cache | no-store` header; per key, the key's metadata `cache` (the same object,
or `false` to turn caching off for that key). Anything else is refused with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InvalidRequestError
from ..redis_link import connection_url

# LiteLLM's call types: accepted so a LiteLLM config loads; only rerank calls are ever cached here.
CALL_TYPES = frozenset({
    "completion", "acompletion", "text_completion", "atext_completion", "embedding", "aembedding",
    "transcription", "atranscription", "rerank", "arerank", "responses", "aresponses", "image_generation",
    "aimage_generation", "speech", "aspeech",
})
RERANK_CALLS = frozenset({"rerank", "arerank"})
DEFAULT_TTL = 86_400.0
DEFAULT_MAX_SIZE_MB = 64.0
DEFAULT_TIMEOUT = 0.1


class CacheParams(BaseModel):
    """`litellm_settings.cache_params`. Without `type`: Redis when the server has Redis settings, else local."""

    # Field docstrings are the configuration reference's descriptions (docs/hooks/config_reference.py).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    type: Literal["local", "redis"] | None = None
    """`local` (this process) or `redis` (shared by replicas); unset: `redis` when the server has Redis
    settings (`router_settings.redis_url`, `REDIS_URL`), else `local`."""
    host: str | None = None
    """A Redis of the cache's own (with `port`, `password`); unset: the server's Redis link."""
    port: int | None = Field(None, gt=0, lt=65536)
    """Port of `host` (default 6379)."""
    password: str | None = None
    """Password of `host`."""
    url: str | None = None
    """A Redis of the cache's own as a URL (`redis://...`, `rediss://...`); wins over `host`."""
    ttl: float = Field(DEFAULT_TTL, gt=0)
    """Seconds an entry lives (a request's `cache.ttl` overrides it for what that request stores)."""
    namespace: str | None = None
    """Prefix of every key (Redis: after `general_settings.redis_key_prefix`)."""
    supported_call_types: list[str] = Field(default_factory=lambda: ["rerank", "arerank"])
    """LiteLLM's call types; rerank answers are cached when `rerank` or `arerank` is listed."""
    max_size_mb: float = Field(DEFAULT_MAX_SIZE_MB, gt=0)
    """In-process cache: the most memory it holds (keys, values and their overhead), least recently used
    entries evicted first."""
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0)
    """Redis: seconds a look-up or write may take before the request goes on without the cache."""
    scope: Literal["shared", "per_key"] = "shared"
    """`shared`: every key reuses every other key's entries (scores do not depend on the caller);
    `per_key`: each virtual key has its own entries, so tenants cannot learn from each other's latency."""
    answers: bool = True
    """Level 1: whole answers, keyed by everything that changes the answer."""
    scores: bool = True
    """Level 2: per-document scores, keyed by model, query and document; partial hits send only the rest."""

    @field_validator("supported_call_types")
    @classmethod
    def _known_call_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - CALL_TYPES)
        if unknown:
            raise ValueError(f"unknown call type(s) {', '.join(unknown)}; rerank calls are 'rerank' and 'arerank'")
        return value

    @property
    def caches_rerank(self) -> bool:
        return bool(RERANK_CALLS & set(self.supported_call_types))

    def redis_url(self) -> str | None:
        """The Redis these params name themselves (None: use the server's Redis settings)."""
        return connection_url(self.url, self.host, self.port, self.password)


@dataclass(slots=True)
class CacheUse:
    """How one request uses the cache, and what it got (set as the request goes)."""

    cache: Any
    """The `ResultCache` (scored look-ups in `invoke` reach it through the request)."""
    namespace: str
    read: bool = True
    write: bool = True
    ttl: float = DEFAULT_TTL
    status: str = "miss"
    """hit | partial | miss"""
    documents: int = 0
    """Documents whose score came from the cache."""
    saved: Decimal = Decimal(0)
    unavailable: bool = False
    """Redis did not answer: this request went on without the cache."""


_REQUEST_KEYS = {"no-cache", "no-store", "ttl", "namespace"}


def request_controls(value: Any, where: str) -> dict[str, Any]:
    """LiteLLM's dynamic cache controls, checked; `where` names the field in the message."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"invalid request: {where} must be an object such as {{\"no-cache\": true}}")
    unknown = sorted(set(value) - _REQUEST_KEYS)
    if unknown:
        raise InvalidRequestError(f"invalid request: {where}.{unknown[0]} is not supported; "
                                  "use no-cache, no-store, ttl or namespace")
    for name in ("no-cache", "no-store"):
        if name in value and not isinstance(value[name], bool):
            raise InvalidRequestError(f"invalid request: {where}.{name} must be true or false")
    ttl = value.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise InvalidRequestError(f"invalid request: {where}.ttl must be a positive number of seconds")
    namespace = value.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace or len(namespace) > 200):
        raise InvalidRequestError(f"invalid request: {where}.namespace must be a non-empty string")
    return value


def header_controls(header: str | None) -> tuple[bool, bool]:
    """(no-cache, no-store) from a `Cache-Control` header; other directives do not concern a rerank call."""
    if not header:
        return False, False
    directives = {part.strip().split("=", 1)[0].lower() for part in header.split(",")}
    return "no-cache" in directives, "no-store" in directives
