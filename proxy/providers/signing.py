"""Request signing as `httpx.Auth`: AWS SigV4 (botocore) and Google OAuth bearer tokens (google-auth).

Both libraries are optional extras, imported when a provider builds its request, so a missing extra is a
`MissingExtraError` for that deployment only. Signing runs inside the HTTP client's auth flow, which keeps
the providers' `build` pure: Google token fetching (file reads, a token-endpoint round trip) happens in a
worker thread, once per credential until the token nears expiry.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

import httpx

from ..errors import (
    ConfigurationError,
    MissingExtraError,
    UpstreamAuthError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

_SIGNED_BY_AWS = ("authorization", "x-amz-date", "x-amz-security-token")


class SigV4Auth(httpx.Auth):
    """AWS Signature Version 4 over method, path, query, host, content-type and the body's SHA-256."""

    requires_request_body = True

    def __init__(self, *, provider: str, service: str, region: str, access_key: str, secret_key: str,
                 session_token: str | None = None):
        try:
            from botocore.auth import SigV4Auth as BotoSigV4
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError:
            raise MissingExtraError(provider, "bedrock", "botocore") from None
        self._signer = BotoSigV4(Credentials(access_key, secret_key, session_token), service, region)
        self._request_type = AWSRequest

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Only content-type is offered besides host: headers a proxy on the way may rewrite stay unsigned.
        aws = self._request_type(method=request.method, url=str(request.url), data=request.content,
                                 headers={"content-type": request.headers.get("content-type", "")})
        self._signer.add_auth(aws)
        for name in _SIGNED_BY_AWS:
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        yield request


GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def google_credentials_info(spec: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The service-account (or other) JSON given inline, as a dict; None for a file path or ADC."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            info = json.loads(spec)
        except ValueError:
            raise ConfigurationError("vertex_credentials looks like JSON but does not parse") from None
        if isinstance(info, dict):
            return info
    return None


class GoogleTokenSource:
    """One set of google-auth credentials and its current access token, refreshed under a lock."""

    def __init__(self, load: Callable[[], Any]):
        self._load = load
        self._credentials: Any = None
        self._lock = threading.Lock()

    def cached(self) -> str | None:
        credentials = self._credentials
        return credentials.token if credentials is not None and credentials.valid else None

    def fetch(self) -> str:
        """Blocking: load the credentials if needed and refresh the token unless another thread just did."""
        import google.auth.exceptions
        from google.auth.transport.requests import Request

        with self._lock:
            token = self.cached()
            if token:
                return token
            try:
                if self._credentials is None:
                    self._credentials = self._load()
                self._credentials.refresh(Request())
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ConfigurationError(f"Google credentials could not be loaded: {exc}") from None
            except google.auth.exceptions.TransportError as exc:
                raise UpstreamUnavailableError(f"could not reach Google's token endpoint: {exc}") from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise UpstreamAuthError(f"Google refused our credentials: {exc}") from None
            return self._credentials.token

    def forget(self, token: str) -> None:
        """Drop a token the API refused, so the next call fetches a fresh one."""
        with self._lock:
            if self._credentials is not None and self._credentials.token == token:
                self._credentials.token = None


def _loader(spec: str | Mapping[str, Any] | None) -> Callable[[], Any]:
    import google.auth

    info = google_credentials_info(spec)
    if info is not None:
        return lambda: google.auth.load_credentials_from_dict(info, scopes=GOOGLE_SCOPES)[0]
    if spec:
        return lambda: google.auth.load_credentials_from_file(str(spec), scopes=GOOGLE_SCOPES)[0]
    return lambda: google.auth.default(scopes=GOOGLE_SCOPES)[0]


_sources: dict[str, GoogleTokenSource] = {}
_sources_lock = threading.Lock()


def google_token_source(spec: str | Mapping[str, Any] | None, *, provider: str) -> GoogleTokenSource:
    """The process-wide token source for these credentials (a path, inline JSON, or None for ADC).

    Tokens are cached per credential, not per request or deployment: the SDK resolves a fresh deployment on
    every call, and a token is valid for an hour whoever asks.
    """
    try:
        import google.auth.transport.requests  # noqa: F401
    except ImportError:
        raise MissingExtraError(provider, "vertex", "google-auth") from None
    key = json.dumps(spec, sort_keys=True) if isinstance(spec, Mapping) else str(spec or "")
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            source = _sources[key] = GoogleTokenSource(_loader(spec))
        return source


class GoogleBearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` from a `GoogleTokenSource`; refreshing never blocks the event loop.

    The HTTP timeout does not cover auth flows, so fetching a token gets the same time limit on its own.
    """

    def __init__(self, source: GoogleTokenSource, *, timeout: float):
        self._source = source
        self._timeout = timeout

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._source.cached() or self._source.fetch()
        request.headers["authorization"] = f"Bearer {token}"
        if (yield request).status_code == 401:
            self._source.forget(token)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = self._source.cached()
        if token is None:
            try:
                token = await asyncio.wait_for(asyncio.to_thread(self._source.fetch), self._timeout)
            except TimeoutError:
                raise UpstreamTimeoutError(f"no Google access token after {self._timeout:g}s") from None
        request.headers["authorization"] = f"Bearer {token}"
        if (yield request).status_code == 401:
            self._source.forget(token)
