"""The only module that does upstream I/O: one pooled HTTP client behind a two-method interface.

Swapping the HTTP client touches this file alone. Network failures become typed upstream errors here;
HTTP statuses are classified by `errors.upstream_error_for_status`.

Two implementations: `AiohttpTransport`, the server's default, forwards several times more requests per
CPU second than httpx's own pool (see README, Performance); `HttpxTransport` serves callers that hand the
SDK their own `httpx.AsyncClient`. Request signing stays `httpx.Auth` in both: the aiohttp transport runs
the auth flow on an `httpx.Request` and sends exactly the bytes and headers it signed.
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


class AiohttpTransport:
    """Upstream calls through one `aiohttp.ClientSession`, created on first use in the running loop.

    Keep-alive pool of `max_connections`, no redirects, no cookies kept between calls (callers share the
    pool), a per-request total timeout, and the JSON body serialised once. Environment proxies
    (`HTTPS_PROXY`, `NO_PROXY`, ...) are honoured, as httpx does, only when some are set at construction:
    reading them per request is a measurable cost on the hot path.
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

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        session = self._session or self._open()
        body = encode_json(request.json) if request.json is not None else None
        headers = request.headers
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers = {**headers, "content-type": "application/json"}
        url = request.url
        try:
            if "@" in url:
                url, headers = _userinfo_as_basic_auth(url, headers)
            if request.auth is None:
                return await self._exchange(session, request.method, url, headers, body, request.timeout)
            return await self._signed(session, request, headers, body)
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutError subclasses
            raise _timeout_error(request.timeout, exc) from None
        except self._errors as exc:
            raise _unavailable_error(exc) from None
        except ValueError as exc:  # a URL or header aiohttp refuses to send: the upstream cannot be reached
            raise _unavailable_error(exc) from None

    async def _exchange(self, session: Any, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float) -> UpstreamResponse:
        async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                   timeout=self._timeout(timeout)) as response:
            content = await response.read()
            merged: dict[str, str] = {}
            for name, value in response.headers.items():
                name = name.lower()
                merged[name] = f"{merged[name]}, {value}" if name in merged else value
            return UpstreamResponse(response.status, merged, content)

    async def _signed(self, session: Any, request: UpstreamRequest, headers: dict[str, str],
                      body: bytes | None) -> UpstreamResponse:
        """Run the `httpx.Auth` flow (sync or async) and send each request it yields, byte for byte."""
        assert request.auth is not None
        outgoing = httpx.Request(request.method, request.url, content=body, headers=headers)
        flow = request.auth.async_auth_flow(outgoing)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = await self._exchange(session, outgoing.method, str(outgoing.url),
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
    """The transport a server builds when none is given: aiohttp's pool (the fastest we measured)."""
    return AiohttpTransport()


__all__ = ["AiohttpTransport", "HttpxTransport", "Transport", "encode_json", "server_transport"]
