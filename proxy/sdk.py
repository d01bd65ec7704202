"""`rerank()` / `arerank()`: call a provider directly, no server, auth or database.

Keys and bases come from arguments, else the provider's documented environment variables. The sync
function runs the async one on a private background event loop, so both share one implementation and
sync callers still reuse pooled connections.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

from .deployments import resolve_deployment
from .invoke import invoke
from .request import make_request
from .transport import HttpxTransport, Transport
from .wire import RerankResponse

T = TypeVar("T")

_transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport] = weakref.WeakKeyDictionary()


def _loop_transport() -> Transport:
    loop = asyncio.get_running_loop()
    transport = _transports.get(loop)
    if transport is None:
        transport = _transports[loop] = HttpxTransport()
    return transport


async def arerank(
    model: str,
    query: str,
    documents: list[str | dict[str, Any]],
    *,
    top_n: int | None = None,
    return_documents: bool | None = True,
    rank_fields: list[str] | None = None,
    max_chunks_per_doc: int | None = None,
    max_tokens_per_doc: int | None = None,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    **params: Any,
) -> RerankResponse:
    """Rerank `documents` for `query` with `model` (`"provider/model"`); returns a Cohere response with `.cost`."""
    request = make_request(
        query, documents, top_n=top_n, return_documents=return_documents, rank_fields=rank_fields,
        max_chunks_per_doc=max_chunks_per_doc, max_tokens_per_doc=max_tokens_per_doc,
        params=params.pop("provider_params", None),
    )
    settings = {"api_key": api_key, "api_base": api_base, "timeout": timeout, "headers": headers, **params}
    deployment = resolve_deployment(model, {k: v for k, v in settings.items() if v is not None},
                                    environ=os.environ)
    transport = HttpxTransport(client) if client is not None else _loop_transport()
    return (await invoke(request, deployment, transport)).to_response()


def rerank(model: str, query: str, documents: list[str | dict[str, Any]], **kwargs: Any) -> RerankResponse:
    """Blocking `arerank`; takes the same arguments (an `httpx.AsyncClient` as `client` is not allowed)."""
    if kwargs.get("client") is not None:
        raise TypeError("rerank() runs on its own event loop; pass `client` to arerank() instead")
    return run_sync(arerank(model, query, documents, **kwargs))


class _BackgroundLoop:
    """One daemon thread running an event loop, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="rerank-proxy-sdk", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


_background = _BackgroundLoop()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    return _background.run(coro)
