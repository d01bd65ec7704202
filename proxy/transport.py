"""The only module that does upstream I/O: one pooled HTTP client behind a two-method interface.

Swapping the HTTP client (httpx's pool, aiohttp) touches this file alone. Network failures become
typed upstream errors here; HTTP statuses are classified by `errors.upstream_error_for_status`.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from .errors import UpstreamTimeoutError, UpstreamUnavailableError
from .providers import UpstreamRequest, UpstreamResponse


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


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
            raise UpstreamTimeoutError(f"upstream timed out after {request.timeout:g}s ({type(exc).__name__})") \
                from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(f"could not reach upstream: {type(exc).__name__}: {exc}") from None
        return UpstreamResponse(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
