"""Request signing as `httpx.Auth`: AWS SigV4 (botocore) and Google OAuth bearer tokens (google-auth).

Both libraries are optional extras, imported when a provider builds its request, so a missing extra is a
`MissingExtraError` for that deployment only. Signing runs inside the HTTP client's auth flow, which keeps
the providers' `build` pure. Credentials are cached per credential set, process-wide (the SDK resolves a
fresh deployment on every call): loading them (file reads, IMDS, STS, a token endpoint) happens in a worker
thread, once, and again only when they near expiry.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, TypeVar

import httpx

from ..errors import (
    ConfigurationError,
    MissingExtraError,
    UpstreamAuthError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .aws_roles import AssumedRole, assume_role_loader

_SIGNED_BY_AWS = ("authorization", "x-amz-date", "x-amz-security-token")
T = TypeVar("T")


class _Cache:
    """A process-wide map from a credential set to what is built from it, bounded, filled under a lock."""

    def __init__(self, limit: int = 256) -> None:
        self._items: dict[Any, Any] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                if len(self._items) >= self._limit:
                    self._items.pop(next(iter(self._items)))
                value = self._items[key] = make()
            return value


async def _current(source: Any, timeout: float, what: str) -> Any:
    """The source's cached credential, else one fetched in a worker thread within `timeout`."""
    value = source.cached()
    if value is None:
        try:
            value = await asyncio.wait_for(asyncio.to_thread(source.fetch), timeout)
        except TimeoutError:
            raise UpstreamTimeoutError(f"no {what} after {timeout:g}s") from None
    return value


class AwsCredentialSource:
    """One set of AWS credentials: keys given outright, a named profile, or botocore's default chain.

    `cached` never blocks: it answers only while botocore needs no refresh. `fetch` (blocking, run in a
    worker thread) loads the credentials once and refreshes refreshable ones (STS, SSO, IMDS,
    `credential_process`) when they near expiry.
    """

    def __init__(self, load: Callable[[], Any], *, missing: str, credentials: Any = None):
        self._load = load
        self._missing = missing
        self._credentials = credentials
        self._lock = threading.Lock()

    def cached(self) -> Any:
        """Frozen credentials (access_key, secret_key, token), or None when they must be loaded or refreshed."""
        credentials = self._credentials
        if credentials is None:
            return None
        refresh_needed = getattr(credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return None
        return credentials.get_frozen_credentials()

    def fetch(self) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ProfileNotFound,
        )

        with self._lock:
            frozen = self.cached()
            if frozen is not None:
                return frozen
            try:
                if self._credentials is None:
                    credentials = self._load()
                    if credentials is None:
                        raise ConfigurationError(self._missing)
                    self._credentials = credentials
                return self._credentials.get_frozen_credentials()
            except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
                raise ConfigurationError(f"AWS credentials could not be loaded: {exc}") from None
            except ClientError as exc:  # STS refused AssumeRole: our credentials, not the caller's
                raise UpstreamAuthError(f"AWS STS refused to assume the role: {exc}") from None
            except BotoCoreError as exc:
                raise UpstreamUnavailableError(f"could not load or refresh AWS credentials: {exc}") from None


class SigV4Auth(httpx.Auth):
    """AWS Signature Version 4 over method, path, query, host, content-type and the body's SHA-256.

    The botocore signer is built once per set of frozen credentials (so again only after a refresh); the
    HTTP timeout does not cover auth flows, so loading credentials gets the same time limit on its own.
    """

    requires_request_body = True

    def __init__(self, source: AwsCredentialSource, *, service: str, region: str, timeout: float):
        from botocore.auth import SigV4Auth as BotoSigV4
        from botocore.awsrequest import AWSRequest

        self._source = source
        self._service = service
        self._region = region
        self._timeout = timeout
        self._signer_type = BotoSigV4
        self._request_type = AWSRequest
        self.signer: Any = None
        """The botocore signer of the current credentials."""

    def _sign(self, request: httpx.Request, frozen: Any) -> httpx.Request:
        signer = self.signer
        if signer is None or signer.credentials != frozen:
            signer = self.signer = self._signer_type(frozen, self._service, self._region)
        # Only content-type is offered besides host: headers a proxy on the way may rewrite stay unsigned.
        aws = self._request_type(method=request.method, url=str(request.url), data=request.content,
                                 headers={"content-type": request.headers.get("content-type", "")})
        signer.add_auth(aws)
        for name in _SIGNED_BY_AWS:
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        return request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        yield self._sign(request, self._source.cached() or self._source.fetch())

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        yield self._sign(request, await _current(self._source, self._timeout, "AWS credentials"))


_aws_sources = _Cache()
_aws_auths = _Cache()


def sigv4_auth(*, provider: str, service: str, region: str, timeout: float,
               access_key: str | None = None, secret_key: str | None = None, session_token: str | None = None,
               profile: str | None = None, role: AssumedRole | None = None) -> SigV4Auth:
    """The process-wide signer for these credentials: the keys when given, else the named profile, else
    botocore's default chain (environment, shared files, SSO, container and instance metadata); with `role`,
    the credentials of that role, assumed with them (see `aws_roles`)."""
    try:
        import botocore.auth  # noqa: F401
    except ImportError:
        raise MissingExtraError(provider, "bedrock", "botocore") from None
    key: tuple[Any, ...]
    if access_key and secret_key:
        key = ("keys", access_key, secret_key, session_token)
    elif profile:
        key = ("profile", profile)
    else:
        key = ("default chain",)
    if role is not None:  # the STS client lives in the region signed for, with the deployment's timeout
        key = ("role", role, None if role.web_identity_token else key, region, timeout)
    source = _aws_sources.get(key, lambda: _aws_source(key, provider))
    return _aws_auths.get((key, service, region, timeout),
                          lambda: SigV4Auth(source, service=service, region=region, timeout=timeout))


def _aws_source(key: tuple[Any, ...], provider: str) -> AwsCredentialSource:
    missing = (f"Provider '{provider}' found no AWS credentials: give 'aws_access_key_id' and "
               "'aws_secret_access_key' (parameters or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
               "'aws_profile_name' (or AWS_PROFILE), or credentials botocore's default chain can find")
    if key[0] == "role":
        _, role, base, region, timeout = key
        load = assume_role_loader(role, _base_loader(base) if base else None, region=region, timeout=timeout)
        return AwsCredentialSource(load, missing=missing)
    if key[0] == "keys":
        from botocore.credentials import Credentials

        return AwsCredentialSource(lambda: None, missing=missing, credentials=Credentials(*key[1:]))
    return AwsCredentialSource(_base_loader(key), missing=missing)


def _base_loader(key: tuple[Any, ...]) -> Callable[[], Any]:
    """Blocking (run in a worker thread): botocore reads files and may call IMDS or STS."""
    if key[0] == "keys":
        from botocore.credentials import Credentials

        return lambda: Credentials(*key[1:])
    profile = key[1] if key[0] == "profile" else None

    def load() -> Any:
        from botocore.session import Session

        return Session(profile=profile).get_credentials()

    return load


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


_google_sources = _Cache()


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
    return _google_sources.get(key, lambda: GoogleTokenSource(_loader(spec)))


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
        token = await _current(self._source, self._timeout, "Google access token")
        request.headers["authorization"] = f"Bearer {token}"
        if (yield request).status_code == 401:
            self._source.forget(token)
