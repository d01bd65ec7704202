"""The only module that does upstream I/O: one pooled HTTP client behind a two-method interface.

Swapping the HTTP client touches this file alone. Network failures become typed upstream errors here;
HTTP statuses are classified by `errors.upstream_error_for_status`.

Three implementations. `PoolTransport` (our keep-alive pool on httptools, `http_pool.py`) is the server's
default: it costs the least CPU per call of every client we measured (see docs/performance.md).
`AiohttpTransport` takes over when environment proxies are set. `HttpxTransport` serves the SDK and callers
who hand it their own `httpx.AsyncClient`. Request signing stays `httpx.Auth` in all three: the first two
run the auth flow on an `httpx.Request` and send exactly the bytes and headers it signed.

One contract for all three (tests/test_upstream_contract.py runs the same suite over each): `ClientOptions`
builds them (connection limits in total and per host, TLS verification and CA bundle, answer limits); the
body limit is sized from the request (`UpstreamRequest.documents`, http_body.py) and bodies are decoded by
one bounded decoder; `timeout` is one deadline for the whole call; a request is sent at most once (none of
them re-sends a POST whose bytes were written); an answer we cannot read or that passes a limit is
`UpstreamMalformedError` (502), a connection that fails is `UpstreamUnavailableError` (503).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from .errors import UpstreamMalformedError, UpstreamTimeoutError, UpstreamUnavailableError
from .host_limits import HostLimits
from .http_body import ProtocolError, ResponseLimits, decoded, read_capped, too_large
from .providers import UpstreamRequest, UpstreamResponse

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    orjson = None  # type: ignore[assignment]


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How an upstream client is built: the same for every transport (general_settings `upstream_*`,
    litellm_settings `ssl_verify`)."""

    max_connections: int = 1000
    """Calls in flight in total; more wait for a slot inside their deadline."""
    max_connections_per_host: int = 500
    """Calls in flight to one host (scheme, host, port): a host that stops answering holds no more."""
    keepalive_timeout: float = 30.0
    limits: ResponseLimits = field(default_factory=ResponseLimits)
    verify: bool = True
    """Verify upstream certificates (litellm_settings.ssl_verify: false turns it off)."""
    ca_bundle: str | None = None
    """A PEM file of CAs to trust instead of the system's (ssl_verify: PATH, else SSL_CERT_FILE)."""

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_bundle)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


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


def _malformed_error(exc: BaseException) -> UpstreamMalformedError:
    return UpstreamMalformedError(f"could not read the upstream's answer: {exc}")


def _unavailable_error(exc: BaseException) -> UpstreamUnavailableError:
    detail = str(exc)
    return UpstreamUnavailableError(f"could not reach upstream: {type(exc).__name__}" + (f": {detail}" if detail
                                                                                          else ""))


class HttpxTransport:
    """Upstream calls through one `httpx.AsyncClient` (yours, or a pooled one it owns). The body is read raw
    and decoded by http_body.py, so the same limits hold as for the other transports; calls per host are
    limited here (httpx has no per-host limit of its own)."""

    def __init__(self, client: httpx.AsyncClient | None = None, *, options: ClientOptions | None = None):
        self.options = options = options or ClientOptions()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=options.max_connections,
                                max_keepalive_connections=options.max_connections,
                                keepalive_expiry=options.keepalive_timeout),
            timeout=None,
            follow_redirects=False,
            # httpx's own trust store (certifi, or SSL_CERT_FILE) unless told otherwise: SDK users keep it
            verify=options.ssl_context() if options.ca_bundle or not options.verify else True,
        )
        self._slots = HostLimits(options.max_connections, options.max_connections_per_host)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        body = encode_json(request.json) if request.json is not None else None
        headers = request.headers
        if body is not None and not any(name.lower() == "content-type" for name in headers):
            headers = {**headers, "content-type": "application/json"}
        limit = self.options.limits.body_limit(request.documents, len(body or b""))
        deadline = asyncio.get_running_loop().time() + request.timeout
        try:
            host = await self._slots.take(urlsplit(request.url).netloc, deadline)
            try:
                status, answer_headers, raw = await self._exchange(request, headers, body, limit, deadline)
            finally:
                self._slots.give_back(host)
            content = await decoded(raw, answer_headers.get("content-encoding"), limit, deadline)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _timeout_error(request.timeout, exc) from None
        except ProtocolError as exc:
            raise _malformed_error(exc) from None
        except httpx.HTTPError as exc:
            raise (_malformed_error(exc) if _unreadable_by_h11(exc) else _unavailable_error(exc)) from None
        return UpstreamResponse(status, answer_headers, content)

    async def _exchange(self, request: UpstreamRequest, headers: dict[str, str], body: bytes | None,
                        limit: int, deadline: float) -> tuple[int, dict[str, str], bytes]:
        """httpx's own timeout bounds each phase up to the answer's head (auth flows give their credential
        fetch the same time on its own, with its own message); the body is read by the call's deadline."""
        async with self._client.stream(request.method, request.url, content=body, headers=headers,
                                       auth=request.auth or httpx.USE_CLIENT_DEFAULT,
                                       timeout=request.timeout) as response:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise too_large(limit)
            async with asyncio.timeout_at(deadline):
                raw = await read_capped(response.aiter_raw(), limit)
            return response.status_code, dict(response.headers), raw

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _unreadable_by_h11(exc: BaseException) -> bool:
    """httpx raises one `RemoteProtocolError` for bytes h11 could not parse and for a server that hung up:
    only the first is an unreadable answer (h11's own error is in its chain)."""
    import h11

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, h11.RemoteProtocolError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class _BytesTransport:
    """What the aiohttp and pool transports share: JSON encoded once, URL credentials as Basic auth, request
    signing (`httpx.Auth`, sync or async) run on an `httpx.Request` whose exact bytes and headers are sent,
    and failures typed. Subclasses implement `_exchange` (one request, one response) and `aclose`."""

    _errors: tuple[type[BaseException], ...] = (OSError,)
    _unreadable: tuple[type[BaseException], ...] = (ProtocolError,)

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float, documents: int) -> UpstreamResponse:
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
                return await self._exchange(request.method, url, headers, body, request.timeout, request.documents)
            return await self._signed(request, headers, body)
        except TimeoutError as exc:  # asyncio's and aiohttp's timeouts are TimeoutError
            raise _timeout_error(request.timeout, exc) from None
        except self._unreadable as exc:
            raise _malformed_error(exc) from None
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
                                                request.timeout, request.documents)
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

    def __init__(self, *, options: ClientOptions | None = None):
        from .http_pool import ConnectionPool

        self.options = options = options or ClientOptions()
        self.pool = ConnectionPool(max_connections=options.max_connections,
                                   max_connections_per_host=options.max_connections_per_host,
                                   keepalive_timeout=options.keepalive_timeout, ssl_context=options.ssl_context(),
                                   limits=options.limits)

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float, documents: int) -> UpstreamResponse:
        pairs = headers.items() if isinstance(headers, dict) else headers
        status, raw_headers, content = await self.pool.request(method, url, pairs, body, timeout,
                                                               documents=documents)
        return UpstreamResponse(status, _merged((k.decode("latin-1"), v.decode("latin-1"))
                                                for k, v in raw_headers), content)

    async def aclose(self) -> None:
        self.pool.close()


class AiohttpTransport(_BytesTransport):
    """Upstream calls through one `aiohttp.ClientSession`, created on first use in the running loop.

    No redirects, no cookies kept between calls (callers share the pool), a per-request total timeout; the
    body is read raw (aiohttp's own decompression is off) and decoded by http_body.py; header lines over
    `limits.max_header_bytes` are refused by aiohttp's parser. Environment proxies (`HTTPS_PROXY`,
    `NO_PROXY`, ...) are honoured, as httpx does, only when some are set at construction: reading them per
    request is a measurable cost.
    """

    def __init__(self, *, options: ClientOptions | None = None, trust_env: bool | None = None):
        import aiohttp

        self._aiohttp = aiohttp
        self.options = options or ClientOptions()
        self._trust_env = bool(urllib.request.getproxies()) if trust_env is None else trust_env
        self._session: Any = None
        self._timeouts: dict[float, Any] = {}
        self._errors = (aiohttp.ClientError, OSError)
        self._unreadable = (ProtocolError, aiohttp.ClientResponseError, aiohttp.ClientPayloadError)

    def _open(self) -> Any:
        aiohttp, options = self._aiohttp, self.options
        connector = _checked_connector(aiohttp)(limit=options.max_connections,
                                         limit_per_host=options.max_connections_per_host,
                                         keepalive_timeout=options.keepalive_timeout, ttl_dns_cache=300,
                                         ssl=options.ssl_context())
        header_limit = options.limits.max_header_bytes
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              timeout=aiohttp.ClientTimeout(total=None),
                                              trust_env=self._trust_env, raise_for_status=False,
                                              auto_decompress=False, max_line_size=header_limit,
                                              max_field_size=header_limit)
        return self._session

    def _timeout(self, seconds: float) -> Any:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = self._aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def _exchange(self, method: str, url: str, headers: Any, body: bytes | None,
                        timeout: float, documents: int) -> UpstreamResponse:
        session = self._session or self._open()
        limit = self.options.limits.body_limit(documents, len(body or b""))
        deadline = asyncio.get_running_loop().time() + timeout
        async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                   timeout=self._timeout(timeout)) as response:
            try:
                if response.content_length is not None and response.content_length > limit:
                    raise too_large(limit)
                raw = await read_capped(response.content.iter_any(), limit)
            except ProtocolError:
                response.close()  # drop the connection, and what it still holds, now
                raise
            encoding = response.headers.get("content-encoding")
            headers = _merged(response.headers.items())
        content = await decoded(raw, encoding, limit, deadline)
        return UpstreamResponse(response.status, headers, content)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _checked_connector(aiohttp: Any) -> Any:
    """aiohttp's TCPConnector, except that an idle connection which received bytes (or its end) since its last
    answer is closed instead of reused: aiohttp would read those bytes as the next call's answer."""

    class CheckedConnector(aiohttp.TCPConnector):
        async def _get(self, key: Any, traces: Any) -> Any:
            connection = await super()._get(key, traces)
            while connection is not None and connection.protocol is not None and connection.protocol.should_close:
                connection.close()
                connection = await super()._get(key, traces)
            return connection

    return CheckedConnector


def _userinfo_as_basic_auth(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """`user:pass@` in a URL becomes Basic auth and leaves the URL, as httpx does (it replaces any
    authorization header); aiohttp would refuse the request instead."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, headers
    basic = "Basic " + base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
    kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return str(parsed.copy_with(username=None, password=None)), {**kept, "authorization": basic}


def server_transport(options: ClientOptions | None = None) -> Transport:
    """The transport a server builds when none is given: our lean pool (the fastest we measured), or aiohttp's
    when environment proxies are set (the pool does not speak to proxies)."""
    if urllib.request.getproxies():
        return AiohttpTransport(options=options, trust_env=True)
    return PoolTransport(options=options)


__all__ = ["AiohttpTransport", "ClientOptions", "HttpxTransport", "PoolTransport", "Transport", "encode_json",
           "server_transport"]
