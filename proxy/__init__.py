"""rerank-proxy: a Cohere-compatible rerank gateway, and the SDK it is built on."""

from .errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    ClientError,
    ConfigurationError,
    GuardrailBlockedError,
    InvalidRequestError,
    MissingExtraError,
    ModelNotFoundError,
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
from .routing import Router
from .sdk import arerank, rerank
from .wire import RerankResponse, RerankResult

__version__ = "0.1.0"

__all__ = [
    "AllDeploymentsFailedError",
    "AuthenticationError",
    "ClientError",
    "ConfigurationError",
    "GuardrailBlockedError",
    "InvalidRequestError",
    "MissingExtraError",
    "ModelNotFoundError",
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
    "rerank",
]
