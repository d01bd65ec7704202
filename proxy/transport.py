"""The only module that does upstream I/O: one pooled HTTP client behind a two-method interface.

Swapping the HTTP client touches this file alone. Network failures become typed upstream errors here;
HTTP statuses are classified by `errors.upstream_error_for_status`.

Three implementations. `PoolTransport` (our keep-alive pool on httptools, `http_pool.py`) is the server's
default: it costs the least CPU per call of every client we measured (see docs/performance.md).
`AiohttpTransport` takes over when environment proxies are set. `HttpxTransport` serves the SDK and callers
who hand it their own `httpx.AsyncClient`. Request signing stays `httpx.Auth` in all three: the first two
run the auth flow on an `httpx.Request` and send exactly the bytes and headers it signed.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any, Protocol

import httpx

from .errors import UpstreamTimeoutError, UpstreamUnavailableError
from .providers import UpstreamRequest, UpstreamResponse

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    orjson = None  # type: ignore[assignment]


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as httpx would send it; orjson when it can, the stdlib for what it cannot."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _timeout_error(timeout: float, exc: BaseException) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(f"upstream timed out after {timeout:g}s ({type(exc).__name__})")


def _unavailable_error(exc: BaseException) -> UpstreamUnavailableError:
    detail = str(exc)
    return UpstreamUnavailableError(f"could not reach upstream: {type(exc).__name__}" + (f": {detail}" if detail
                                                                                          else ""))


class HttpxTransport:
    """Upstream calls through one `httpx.AsyncClient` (yours, or a pooled one it owns)."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, max_connections: int = 512):
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=None,
            follow_redirects=False,
        )

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        try:
            response = await self._client.request(
                request.method,
                request.url,
                json=request.json,
                headers=request.headers,
                auth=request.auth or httpx.USE_CLIENT_DEFAULT,
                timeout=request.timeout,
            )
        except httpx.TimeoutException as exc:
            raise _timeout_error(request.timeout, exc) from None
        except httpx.HTTPError as exc:
            raise _unavailable_error(exc) from None
        return UpstreamResponse(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class _BytesTransport:
    """What the aiohttp and pool transports share: JSON encoded once, URL credentials as Basic auth, request
    signing (`httpx.Auth`, sync or async) run on an `httpx.Request` whose exact bytes and headers are sent,
    and failures typed. Subclasses implement `_exchange` (one request, one response) and `aclose`."""

    _errors: tuple[type[BaseException], ...] = (OSError,)

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float) -> UpstreamResponse:
        raise NotImplementedError

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        body = encode_json(request.json) if request.json is not None else None
        headers = request.headers
        if body is not None and "content-type" not in headers and not any(
                name.lower() == "content-type" for name in headers):
            headers = {**headers, "content-type": "application/json"}
        url = request.url
        try:
            if "@" in url:
                url, headers = _userinfo_as_basic_auth(url, headers)
            if request.auth is None:
                return await self._exchange(request.method, url, headers, body, request.timeout)
            return await self._signed(request, headers, body)
        except TimeoutError as exc:  # asyncio's and aiohttp's timeouts are TimeoutError
            raise _timeout_error(request.timeout, exc) from None
        except self._errors as exc:
            raise _unavailable_error(exc) from None
        except ValueError as exc:  # a URL or header that cannot be sent: the upstream cannot be reached
            raise _unavailable_error(exc) from None

    async def _signed(self, request: UpstreamRequest, headers: dict[str, str],
                      body: bytes | None) -> UpstreamResponse:
        assert request.auth is not None
        outgoing = httpx.Request(request.method, request.url, content=body, headers=headers)
        flow = request.auth.async_auth_flow(outgoing)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = await self._exchange(outgoing.method, str(outgoing.url),
                                                list(outgoing.headers.multi_items()), outgoing.content,
                                                request.timeout)
                # The body is already decoded: a content-encoding header would make httpx decode it again.
                replay_headers = {k: v for k, v in response.headers.items() if k != "content-encoding"}
                replay = httpx.Response(response.status, headers=replay_headers, content=response.body,
                                        request=outgoing)
                try:
                    outgoing = await flow.asend(replay)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def aclose(self) -> None:
        raise NotImplementedError


def _merged(pairs: Any) -> dict[str, str]:
    """Response headers with lower-case names, repeated ones joined by ", " (as httpx's `dict(headers)`)."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged


class PoolTransport(_BytesTransport):
    """Upstream calls through `http_pool.ConnectionPool`: the server's default (see `server_transport`)."""

    def __init__(self, *, max_connections: int = 512, keepalive_timeout: float = 30.0):
        from .http_pool import ConnectionPool, ProtocolError

        self.pool = ConnectionPool(max_connections=max_connections, keepalive_timeout=keepalive_timeout)
        self._errors = (OSError, ProtocolError)

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float) -> UpstreamResponse:
        pairs = headers.items() if isinstance(headers, dict) else headers
        status, raw_headers, content = await self.pool.request(method, url, pairs, body, timeout)
        return UpstreamResponse(status, _merged((k.decode("latin-1"), v.decode("latin-1"))
                                                for k, v in raw_headers), content)

    async def aclose(self) -> None:
        self.pool.close()


class AiohttpTransport(_BytesTransport):
    """Upstream calls through one `aiohttp.ClientSession`, created on first use in the running loop.

    Keep-alive pool of `max_connections`, no redirects, no cookies kept between calls (callers share the
    pool), a per-request total timeout. Environment proxies (`HTTPS_PROXY`, `NO_PROXY`, ...) are honoured,
    as httpx does, only when some are set at construction: reading them per request is a measurable cost.
    """

    def __init__(self, *, max_connections: int = 512, keepalive_timeout: float = 30.0,
                 trust_env: bool | None = None):
        import aiohttp

        self._aiohttp = aiohttp
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        self._trust_env = bool(urllib.request.getproxies()) if trust_env is None else trust_env
        self._session: Any = None
        self._timeouts: dict[float, Any] = {}
        self._errors = (aiohttp.ClientError, OSError)

    def _open(self) -> Any:
        aiohttp = self._aiohttp
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                         keepalive_timeout=self._keepalive_timeout, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              timeout=aiohttp.ClientTimeout(total=None),
                                              trust_env=self._trust_env, raise_for_status=False)
        return self._session

    def _timeout(self, seconds: float) -> Any:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = self._aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float) -> UpstreamResponse:
        session = self._session or self._open()
        async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                   timeout=self._timeout(timeout)) as response:
            content = await response.read()
            return UpstreamResponse(response.status, _merged(response.headers.items()), content)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _userinfo_as_basic_auth(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """`user:pass@` in a URL becomes Basic auth and leaves the URL, as httpx does (it replaces any
    authorization header); aiohttp would refuse the request instead."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, headers
    basic = "Basic " + base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
    kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return str(parsed.copy_with(username=None, password=None)), {**kept, "authorization": basic}


def server_transport() -> Transport:
    """The transport a server builds when none is given: our lean pool (the fastest we measured), or aiohttp's
    when environment proxies are set (the pool does not speak to proxies)."""
    if urllib.request.getproxies():
        return AiohttpTransport(trust_env=True)
    return PoolTransport()


__all__ = ["AiohttpTransport", "HttpxTransport", "PoolTransport", "Transport", "encode_json", "server_transport"]
