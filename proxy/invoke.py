"""One attempt against one deployment: build, send, parse, check, price, normalise.

Requests larger than a provider accepts in one call are split into concurrent sub-requests whose
scores are merged back with their original indices; usage and cost add up.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from .errors import ConfigurationError, ProxyError, UpstreamError, upstream_error_for_status
from .normalise import Ranked, check_scores, normalise
from .pricing import cost, price_for
from .providers import Deployment, ProviderResult, Scored, Usage
from .providers.base import malformed
from .redaction import safe_text, secrets_of
from .request import RerankRequest
from .transport import Transport


def parse_retry_after(headers: dict[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        return _UNREADABLE


_UNREADABLE = object()


async def _send_one(request: RerankRequest, deployment: Deployment, transport: Transport) -> ProviderResult:
    provider = deployment.provider
    upstream = provider.build(request, deployment)
    upstream.documents = len(request.documents)
    try:
        response = await transport.send(upstream)
    except UpstreamError as exc:
        exc.provider = provider.name
        exc.message = f"{provider.name}: {safe_text(exc.message, secrets_of(deployment, upstream.headers), 600)}"
        exc.args = (exc.message,)
        raise
    data = _decode(response.body)
    if not 200 <= response.status < 300:
        raw = response.body[:2048].decode(errors="replace")
        text = provider.error_message(data) if data is not _UNREADABLE else raw
        text = safe_text(str(text), secrets_of(deployment, upstream.headers)) if text else ""
        raise upstream_error_for_status(response.status, text or "(empty body)", provider=provider.name,
                                        retry_after=parse_retry_after(response.headers))
    if data is _UNREADABLE or data is None:
        raise malformed(provider.name, "the body is not JSON")
    try:
        return provider.parse(data, request)
    except ProxyError as exc:  # a provider's parse may quote the answer
        exc.message = safe_text(exc.message, secrets_of(deployment, upstream.headers), 600)
        exc.args = (exc.message,)
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = safe_text(f"{type(exc).__name__}: {exc}", secrets_of(deployment, upstream.headers))
        raise malformed(provider.name, detail) from None


async def _send_split(request: RerankRequest, deployment: Deployment, transport: Transport,
                      size: int) -> ProviderResult:
    starts = range(0, len(request.documents), size)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_send_one(request.subset(s, s + size), deployment, transport))
                     for s in starts]
    except* ProxyError as failed:
        raise failed.exceptions[0] from None
    scores: list[Scored] = []
    usage = Usage()
    for start, task in zip(starts, tasks, strict=True):
        part = task.result()
        scores.extend(Scored(s.index + start, s.score, s.extra) for s in part.scores)
        usage = usage + part.usage
    return ProviderResult(scores, usage, None)


def _fetch(request: RerankRequest, deployment: Deployment, transport: Transport) -> Awaitable[ProviderResult]:
    """The provider's scores for `request`: in process, in one call, or split into concurrent calls. A plain
    function returning the call's awaitable, so the common case runs no coroutine of its own in between."""
    provider = deployment.provider
    size = provider.max_documents_per_call
    if provider.in_process:
        return _rank_here(request, deployment)
    if size and len(request.documents) > size:
        return _send_split(request, deployment, transport, size)
    return _send_one(request, deployment, transport)


async def _rank_here(request: RerankRequest, deployment: Deployment) -> ProviderResult:
    return deployment.provider.rank(request, deployment)


async def invoke(request: RerankRequest, deployment: Deployment, transport: Transport) -> Ranked:
    provider = deployment.provider
    if deployment.missing_env:
        raise ConfigurationError(
            f"deployment '{deployment.id}' cannot be called: environment variable {deployment.missing_env} is not set"
        )
    dropped = provider.unsupported(request, deployment) if request.options else ()
    use = request.cache
    if use is not None and use.cache.scores and deployment.cache_scores:
        ranked = await use.cache.scored(request, deployment, transport, use, _fetch)
    else:
        result = await _fetch(request, deployment, transport)
        check_scores(result, request, provider.name)
        ranked = normalise(request, result, cost(result.usage, request, price_for(deployment)), deployment.id)
    if dropped or request.unknown:
        ranked.payload["meta"]["warnings"] = [
            *(f"'{name}' is not supported by provider '{provider.name}' and was ignored" for name in dropped),
            *(f"'{name}' is not a rerank field and was ignored" for name in request.unknown)]
    return ranked
