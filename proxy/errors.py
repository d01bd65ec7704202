"""The one exception tree, split by where a failure happened and whether another deployment could succeed.

    ProxyError                      status, message, retryable
    ├── ClientError                 the caller's fault: never retried, never failed over
    │   ├── InvalidRequestError     400 (UnprocessableRequestError 422, PayloadTooLargeError 413)
    │   ├── GuardrailBlockedError   400, names the guardrail, never the content
    │   ├── AuthenticationError     401
    │   ├── TagRoutingError         401, no deployment carries the request's tags (LiteLLM's status and words)
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404, an admin object (key, end-user, team, user) that does not exist
    │   │   └── ModelNotFoundError  404 (unknown alias or provider)
    │   └── RateLimitError          429 (our own budgets and rate limits; carries retry_after)
    ├── UpstreamError               the provider's answer (or silence); retryable unless it blamed the request
    │   ├── UpstreamRejectedError   400, the provider refused the request itself
    │   ├── UpstreamAuthError       502, the provider refused *our* credentials
    │   ├── UpstreamRateLimitError  429, carries the provider's retry_after
    │   ├── UpstreamUnavailableError 503 (5xx, connection refused or reset)
    │   ├── UpstreamMalformedError  502, an answer we could not read
    │   └── UpstreamTimeoutError    504
    ├── ConfigurationError          503, a deployment we cannot call (missing key, missing extra)
    ├── StoreUnavailableError       503, our database did not answer (keys it knows keep working from cache)
    ├── ServerBusyError             503, the proxy's own request-memory budget is spent (admission.py)
    ├── DeploymentAtCapacityError   429, a deployment at our own limit for it: `rpm`/`tpm` this minute or
    │                               `max_parallel_requests` in flight (no upstream was called; LiteLLM's 429)
    ├── AllDeploymentsFailedError   the shared status of its causes, else 503; keeps every cause
    └── InternalError               500, a bug of ours (logged with its traceback); never retried

The status codes are the ones the official `cohere` SDK maps to its typed exceptions.
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        return type(self).__name__

    def body(self) -> dict[str, Any]:
        return {"message": self.message}

    def __repr__(self) -> str:
        return f"{self.kind}({self.status}, {self.message!r})"


class ClientError(ProxyError):
    status = 400


class InvalidRequestError(ClientError):
    status = 400


class UnprocessableRequestError(InvalidRequestError):
    status = 422


class PayloadTooLargeError(InvalidRequestError):
    status = 413


class GuardrailBlockedError(ClientError):
    status = 400

    def __init__(self, guardrail: str, reason: str = "the query was blocked"):
        super().__init__(f"Blocked by guardrail '{guardrail}': {reason}.")
        self.guardrail = guardrail


class AuthenticationError(ClientError):
    status = 401


class TagRoutingError(ClientError):
    """`enable_tag_filtering`: the request's tags reach no deployment of the model or its fallbacks."""

    status = 401


class PermissionDeniedError(ClientError):
    status = 403


class NotFoundError(ClientError):
    status = 404


class ModelNotFoundError(NotFoundError):
    status = 404


class RateLimitError(ClientError):
    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, resets: bool = True):
        super().__init__(message, retry_after=retry_after)
        self.resets = resets
        """False for a budget that never resets: no Retry-After then, as waiting would not help."""


class UpstreamError(ProxyError):
    status = 502
    retryable = True

    def __init__(self, message: str, *, provider: str = "", upstream_status: int | None = None,
                 status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status, retry_after=retry_after)
        self.provider = provider
        self.upstream_status = upstream_status


class UpstreamRejectedError(UpstreamError):
    status = 400
    retryable = False


class UpstreamAuthError(UpstreamError):
    status = 502


class UpstreamRateLimitError(UpstreamError):
    status = 429


class UpstreamUnavailableError(UpstreamError):
    status = 503


class UpstreamMalformedError(UpstreamError):
    status = 502


class UpstreamTimeoutError(UpstreamError):
    status = 504


class ConfigurationError(ProxyError):
    """A deployment that cannot be called as configured; another deployment may still work."""

    status = 503
    retryable = True


class InternalError(ProxyError):
    """An exception that is not a ProxyError reached the engine: a bug. The caller gets a plain 500."""

    status = 500

    def __init__(self, message: str = "internal error; the gateway logged it"):
        super().__init__(message)


class StoreUnavailableError(ProxyError):
    status = 503

    def __init__(self, message: str = "the gateway's database is unavailable; try again shortly"):
        super().__init__(message, retry_after=1.0)


class ServerBusyError(ProxyError):
    status = 503

    def __init__(self, message: str):
        super().__init__(message, retry_after=1.0)


class DeploymentAtCapacityError(ProxyError):
    status = 429
    retryable = True


class MissingExtraError(ConfigurationError):
    def __init__(self, provider: str, extra: str, package: str):
        super().__init__(
            f"Provider '{provider}' needs the optional package '{package}': "
            f"pip install 'rerank-proxy[{extra}]'"
        )


class AllDeploymentsFailedError(ProxyError):
    """Every attempt failed; `causes` keeps each (deployment, error) for the logs."""

    retryable = True

    def __init__(self, alias: str, causes: list[tuple[str, ProxyError]], *, retry_after: float | None = None,
                 timed_out: bool = False):
        self.causes = causes
        statuses = {504} if timed_out else {err.status for _, err in causes}
        last = causes[-1][1] if causes else None
        retry_after = retry_after or max((e.retry_after or 0 for _, e in causes), default=0) or 1.0
        summary = f"{last.kind}: {last.message}" if last else "no deployment available"
        super().__init__(
            f"All {len(causes)} attempt(s) for model '{alias}' failed; last error: {summary}",
            # One shared cause keeps its own status (504 all timed out, 429 all rate limited, 502 ...).
            status=statuses.pop() if len(statuses) == 1 else 503,
            retry_after=retry_after,
        )


def upstream_error_for_status(status: int, message: str, *, provider: str,
                              retry_after: float | None = None) -> UpstreamError:
    """Classify a non-2xx upstream answer by its status code: the only place that does it."""
    text = f"{provider} returned HTTP {status}: {message}"
    if status in (401, 403):
        return UpstreamAuthError(text, provider=provider, upstream_status=status)
    if status == 429:
        return UpstreamRateLimitError(text, provider=provider, upstream_status=status, retry_after=retry_after)
    if status in (400, 413, 422):
        return UpstreamRejectedError(text, provider=provider, upstream_status=status)
    if status in (408, 504):
        return UpstreamTimeoutError(text, provider=provider, upstream_status=status)
    if status >= 500:
        return UpstreamUnavailableError(text, provider=provider, upstream_status=status)
    # 404 (wrong model id or path), 409, 424 and the rest: a deployment problem, not the caller's.
    return UpstreamMalformedError(text, provider=provider, upstream_status=status)


def error_class(error: ProxyError | None) -> str | None:
    """The error's name for logs, metrics and spend rows; all-failed adds its last cause's (`A:B`)."""
    if error is None:
        return None
    if isinstance(error, AllDeploymentsFailedError) and error.causes:
        return f"{error.kind}:{error.causes[-1][1].kind}"
    return error.kind
