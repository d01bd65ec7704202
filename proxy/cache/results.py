"""`ResultCache`: repeated rerank work is never paid twice.

Two levels. Whole answers, keyed by everything that changes the answer and stored under the alias that
actually served them (a fallback's answer never lands under the primary's key). Per-document scores, keyed
by the deployment's model, the query and the document's text as sent: a request whose documents were partly
scored before sends only the unseen ones upstream (one call, no `top_n`), merges, then normalises and
applies `top_n` as usual; with every score cached there is no upstream call. Errors are never stored; an
entry that does not decode is a miss. The cost paid is what the upstream call cost (0 on a hit); the cost
saved is what the cached part would have cost.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from ..normalise import Ranked, check_scores, normalise
from ..pricing import Price, cost, estimate_tokens, price_for, search_units
from ..providers import Deployment, ProviderResult, Scored, Usage
from ..request import RerankRequest
from ..transport import Transport
from .config import CacheParams, CacheUse, header_controls, request_controls
from .keys import answer_key, score_keys
from .stores import LocalStore, RedisStore

Fetch = Callable[[RerankRequest, Deployment, Transport], Awaitable[ProviderResult]]
_NO_TOKENS = Usage(total_tokens=0)


class ResultCache:
    """Whole answers and per-document scores in one store (`LocalStore` or `RedisStore`).

    The server builds one from `litellm_settings.cache_params`; SDK users make one (`proxy.Cache(...)`)
    and pass it as `cache=` or set it as `proxy.cache`.
    """

    def __init__(self, store: LocalStore | RedisStore, *, prefix: str = "", ttl: float | None = None,
                 scope: str = "shared", answers: bool = True, scores: bool = True):
        self.store = store
        self.prefix = prefix
        self.ttl = ttl if ttl is not None else CacheParams().ttl
        self.scope = scope
        self.answers = answers
        self.scores = scores

    @classmethod
    def from_params(cls, params: CacheParams, *, link: Any = None, key_prefix: str = "rerank-proxy:"
                    ) -> ResultCache:
        """A cache as `params` describe it. `type: redis` uses the params' own Redis when they name one (a link
        of its own), else `link`: the server's `RedisLink`, shared with routing, rate limits and budgets."""
        namespace = f"{params.namespace}:" if params.namespace else ""
        store: LocalStore | RedisStore
        if params.type == "redis":
            own = params.redis_url()
            if own:
                from ..redis_link import RedisLink

                link = RedisLink(own, prefix=key_prefix, setting="cache_params.url")
            if link is None:
                raise ValueError("a redis cache needs a Redis: cache_params.url or host, or the server's Redis link")
            store = RedisStore(link, timeout=params.timeout, own_link=bool(own))
            prefix = f"{link.prefix}cache:{namespace}"
        else:
            store = LocalStore(int(params.max_size_mb * 1024 * 1024))
            prefix = namespace
        return cls(store, prefix=prefix, ttl=params.ttl, scope=params.scope, answers=params.answers,
                   scores=params.scores)

    # -- per request -----------------------------------------------------------------------------
    def use_for(self, key_hash: str | None, key_metadata: dict[str, Any] | None, body_controls: Any,
                cache_control: str | None) -> CacheUse | None:
        """How this request may use the cache (None: not at all), from the key's metadata, the body's
        `cache` object and the `Cache-Control` header."""
        by_key = key_metadata.get("cache") if key_metadata else None
        if by_key is None and body_controls is None and not cache_control:  # the common case: no controls
            return CacheUse(self, self._namespace(key_hash), ttl=self.ttl)
        if by_key is False:
            return None
        by_key = request_controls(by_key, "the key's metadata.cache") if by_key not in (None, True) else {}
        asked = request_controls(body_controls, "cache")
        no_cache, no_store = header_controls(cache_control)
        read = not (no_cache or asked.get("no-cache") or by_key.get("no-cache"))
        write = not (no_store or asked.get("no-store") or by_key.get("no-store"))
        if not read and not write:
            return None
        namespace = self._namespace(key_hash)
        extra = asked.get("namespace") or by_key.get("namespace")
        if extra:
            namespace += f"n{extra}:"
        ttl = float(asked.get("ttl") or by_key.get("ttl") or self.ttl)
        return CacheUse(self, namespace, read=read, write=write, ttl=ttl)

    def _namespace(self, key_hash: str | None) -> str:
        return f"{self.prefix}k{(key_hash or 'admin')[:32]}:" if self.scope == "per_key" else self.prefix

    async def _get(self, keys: Sequence[str], use: CacheUse) -> list[bytes | None] | None:
        found = await self.store.get_many(keys)
        if found is None:
            use.unavailable = True
        return found

    # -- level 1: whole answers ------------------------------------------------------------------
    async def answer(self, alias: str, request: RerankRequest, use: CacheUse) -> Ranked | None:
        """The stored answer of `alias` to `request`, or None."""
        if not (self.answers and use.read):
            return None
        found = await self._get([answer_key(use.namespace, alias, request)], use)
        entry = found[0] if found else None
        if entry is None:
            return None
        decoded = _decode_answer(entry)
        if decoded is None:
            return None
        value, deployment, body = decoded
        use.status, use.documents, use.saved = "hit", len(request.documents), value
        return Ranked({}, _NO_TOKENS, 0.0, Decimal(0), deployment, raw=body, from_cache=len(request.documents),
                      saved=value, cache="hit")

    def keep(self, alias: str, request: RerankRequest, response: Ranked, use: CacheUse) -> None:
        """Store `alias`'s answer (what was paid plus what the cache saved is what it is worth next time)."""
        use.documents, use.saved, use.status = response.from_cache, response.saved, response.cache or "miss"
        if not (self.answers and use.write):
            return
        body = response.json_bytes()
        response.raw = body
        header = orjson.dumps([str(response.cost + response.saved), response.deployment, len(body),
                               zlib.crc32(body)])
        self.store.put_many([(answer_key(use.namespace, alias, request), header + b"\n" + body)], use.ttl)

    # -- level 2: per-document scores ------------------------------------------------------------
    async def scored(self, request: RerankRequest, deployment: Deployment, transport: Transport, use: CacheUse,
                     fetch: Fetch) -> Ranked:
        """One attempt on `deployment` that sends upstream only the documents without a cached score."""
        keys = score_keys(use.namespace, deployment, request)
        found = await self._get(keys, use) if use.read else None
        count = len(keys)
        scores: list[Scored] = []
        missing: list[int] = []
        if found is None:
            missing = list(range(count))
        else:
            decoded = list(map(_decode_score, found))
            for index, score in enumerate(decoded):
                if score is None:
                    missing.append(index)
                else:
                    scores.append(Scored(index, *score))
        price = price_for(deployment)
        usage, units, paid, upstream_id = _NO_TOKENS, 0.0, Decimal(0), None
        if missing:
            sent = request.pick(missing) if len(missing) < count else request.pick(None)
            part = await fetch(sent, deployment, transport)
            check_scores(part, sent, deployment.provider.name)
            fresh = part.scores if len(missing) == count else [
                Scored(missing[s.index], s.score, s.extra) for s in part.scores]
            scores.extend(fresh)
            usage, units, paid, upstream_id = part.usage, search_units(part.usage, sent), cost(
                part.usage, sent, price), part.upstream_id
            if use.write:
                self.store.put_many([(keys[s.index], _encode_score(s)) for s in fresh], use.ttl)
        served = count - len(missing)
        saved = _saved(request, request.pick(missing) if missing else None, usage, units, price) if served else (
            Decimal(0))
        ranked = normalise(request, ProviderResult(scores, usage, upstream_id), paid, deployment.id, units=units)
        ranked.from_cache, ranked.saved = served, saved
        ranked.cache = "miss" if not served else "hit" if served == count else "partial"
        return ranked

    async def aclose(self) -> None:
        await self.store.aclose()


def _saved(request: RerankRequest, sent: RerankRequest | None, usage: Usage, units: float, price: Price) -> Decimal:
    """What the documents not sent would have cost: the search units the whole request needed beyond those
    billed, and the tokens of the unsent documents, estimated and scaled by how the provider counted the sent
    ones (its tokenizer, not our four characters a token) when it said."""
    saved = Decimal(0)
    if price.per_query:
        saved += price.per_query * Decimal(str(max(search_units(Usage(), request) - units, 0.0)))
    if price.per_token:
        sent_estimate = estimate_tokens(sent) if sent is not None else 0
        unsent = estimate_tokens(request) - sent_estimate
        if sent_estimate and usage.tokens:
            unsent = round(unsent * usage.tokens / sent_estimate)
        saved += price.per_token * Decimal(max(unsent, 0))
    return saved


def _encode_score(item: Scored) -> bytes:
    if item.extra:
        return orjson.dumps([item.score, item.extra])
    return repr(item.score).encode()


def _decode_score(raw: bytes | None) -> tuple[float, dict[str, Any] | None] | None:
    """A stored score (a float, or `[score, extra]`); None when absent or when it does not decode (a corrupt
    entry is a miss)."""
    if raw is None:
        return None
    try:
        score = float(raw)
        extra = None
    except ValueError:
        try:
            value = orjson.loads(raw)
            score, extra = float(value[0]), value[1]
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        if not isinstance(extra, dict):
            return None
    return (score, extra) if math.isfinite(score) else None


def _decode_answer(entry: bytes) -> tuple[Decimal, str | None, bytes] | None:
    """(value, deployment id, body) of a stored answer; None when any part does not check out."""
    head, sep, body = entry.partition(b"\n")
    if not sep:
        return None
    try:
        value, deployment, length, crc = orjson.loads(head)
        if len(body) != length or zlib.crc32(body) != crc:
            return None
        return Decimal(value), deployment, body
    except (ValueError, TypeError, ArithmeticError):
        return None

