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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx

from .cache import ResultCache
from .deployments import resolve_deployment
from .invoke import invoke
from .normalise import Ranked
from .request import RerankRequest, make_request
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
    priority: int | None = None,
    relevant_spans: dict[str, Any] | None = None,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = None,
    headers: dict[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    cache: ResultCache | dict[str, Any] | bool | None = None,
    **params: Any,
) -> RerankResponse:
    """Rerank `documents` for `query` with `model` (`"provider/model"`); returns a Cohere response with `.cost`.

    `cache`: a `proxy.Cache(...)` to use, LiteLLM's controls for `proxy.cache` (`{"no-cache": True}`...),
    or False to leave the cache out of this call; by default `proxy.cache` when it is set.
    """
    request = make_request(
        query, documents, top_n=top_n, return_documents=return_documents, rank_fields=rank_fields,
        max_chunks_per_doc=max_chunks_per_doc, max_tokens_per_doc=max_tokens_per_doc,
        params=params.pop("provider_params", None), priority=priority, relevant_spans=relevant_spans,
    )
    settings = {"api_key": api_key, "api_base": api_base, "timeout": timeout, "headers": headers, **params}
    deployment = resolve_deployment(model, {k: v for k, v in settings.items() if v is not None},
                                    environ=os.environ)
    transport = HttpxTransport(client) if client is not None else _loop_transport()

    async def compute() -> tuple[Ranked, str | None]:
        return await invoke(request, deployment, transport), model

    return (await through_cache(cache, model, request, compute)).to_response()


async def through_cache(cache: ResultCache | dict[str, Any] | bool | None, alias: str | None,
                        request: RerankRequest, compute: Callable[[], Awaitable[tuple[Ranked, str | None]]]) -> Ranked:
    """`compute()`'s answer, or the cached one: the SDK's (and `Router`'s) way through the result cache.
    `compute` returns the answer and the alias that served it (the key it is stored under); its attempts
    read the request's cache use, so they reuse per-document scores too. A None alias (tags that reach no
    deployment of it) reads no whole answer, and a None from `compute` stores none."""
    chosen, controls = (cache, None) if isinstance(cache, ResultCache) else (_module_cache(), cache)
    use = None
    if chosen is not None and cache is not False:
        use = chosen.use_for(None, None, controls if isinstance(controls, dict) else None, None)
    if chosen is None or use is None:
        return (await compute())[0]
    request.cache = use
    answer = None if alias is None else await chosen.answer(alias, request, use)
    if answer is not None:
        return answer
    answer, served_by = await compute()
    if served_by is not None:
        chosen.keep(served_by, request, answer, use)
    return answer


def _module_cache() -> ResultCache | None:
    """`proxy.cache`, LiteLLM's `litellm.cache`: read at call time, never at import."""
    import proxy

    chosen = getattr(proxy, "cache", None)
    if chosen is not None and not isinstance(chosen, ResultCache):
        raise TypeError("proxy.cache must be a proxy.Cache(...) or None")
    return chosen


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
