"""rerank-proxy: a Cohere-compatible rerank gateway, and the SDK it is built on."""

from .cache import Cache, ResultCache
from .errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    ClientError,
    ConfigurationError,
    GuardrailBlockedError,
    InvalidRequestError,
    MissingExtraError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ProxyError,
    RateLimitError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamRateLimitError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .sdk import arerank, rerank
from .sdk_router import Router
from .wire import RerankResponse, RerankResult

__version__ = "0.1.0"

cache: ResultCache | None = None
"""Set to a `proxy.Cache(...)` to cache every SDK call (LiteLLM's `litellm.cache`); `cache=` per call wins."""

__all__ = [
    "AllDeploymentsFailedError",
    "AuthenticationError",
    "Cache",
    "ClientError",
    "ConfigurationError",
    "GuardrailBlockedError",
    "InvalidRequestError",
    "MissingExtraError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProxyError",
    "RateLimitError",
    "RerankResponse",
    "RerankResult",
    "Router",
    "UpstreamAuthError",
    "UpstreamError",
    "UpstreamMalformedError",
    "UpstreamRateLimitError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "arerank",
    "cache",
    "rerank",
]
