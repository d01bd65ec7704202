"""The result cache's bench: what it saves on a realistic overlap pattern, and what a Redis look-up costs.

Replay: the same stream of requests through the engine twice, without and with the cache, against a counting
upstream (Cohere's wire format, deterministic scores): `--exact` of the requests repeat an earlier request
as is; `--repeat` ask an earlier query again with `--overlap` of that request's documents and new ones for
the rest (a retriever returning mostly the same passages, or pagination); the rest are new questions.
Reported per pricing model (per search unit, per token): upstream calls, documents sent and USD paid, with
and without the cache, and the cost saved as the spend rows record it.

Look-up: with `--redis-url`, the p50/p90 of one pipelined look-up of `--lookup-docs` per-document scores
(one MGET round trip) and of a whole cache-assisted attempt with every score cached (keys, look-up, merge,
normalise), on loopback.

    python bench/cache_replay.py                                   # replay, local cache
    python bench/cache_replay.py --redis-url redis://127.0.0.1:6379/0 --json bench/results/cache.json

Full-hit CPU per request against the pass-through floor is measured by the main bench with the cache on in
a variant (every request of its fixed stream after the first is a full hit):
    python bench/run.py --targets floor-pool,rerank-proxy --docs 4,1000 --variant-config bench/cache.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.auth.caller import Caller  # noqa: E402
from proxy.cache import CacheParams, ResultCache  # noqa: E402
from proxy.engine import Call, Engine  # noqa: E402
from proxy.providers import UpstreamRequest, UpstreamResponse  # noqa: E402
from proxy.routing import Router  # noqa: E402
from proxy.settings import parse_config  # noqa: E402
from proxy.wire import RerankBody  # noqa: E402

WORDS = ("capital city state river north south federal district island ocean population history law court "
         "government museum library university market harbor mountain valley bridge railway station airport "
         "festival language culture economy industry energy climate forest desert coast border treaty").split()
MODELS = {"per search unit": "rerank-v3.5", "per token": "rerank-v5.0-fast"}


class CountingUpstream:
    """A Cohere-shaped upstream in process: counts calls and documents, scores by word overlap."""

    def __init__(self) -> None:
        self.calls = 0
        self.documents = 0

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        body = request.json
        self.calls += 1
        self.documents += len(body["documents"])
        query = set(body["query"].split())
        results = [{"index": i, "relevance_score": round(len(query & set(d.split())) / (len(query) + 1), 6)}
                   for i, d in enumerate(body["documents"])]
        results.sort(key=lambda r: -r["relevance_score"])
        if body.get("top_n"):
            results = results[: body["top_n"]]
        tokens = sum(len(d) // 4 + 1 for d in body["documents"])
        payload = {"id": uuid.uuid4().hex, "results": results,
                   "meta": {"billed_units": {"search_units": 1, "input_tokens": tokens}}}
        return UpstreamResponse(200, {}, orjson.dumps(payload))

    async def aclose(self) -> None:
        return None


def workload(requests: int, docs: int, exact: float, repeat: float, overlap: float,
             seed: int) -> list[tuple[str, list[str]]]:
    """(query, documents) per request, by the pattern in the module docstring."""
    rng = random.Random(seed)
    passages = iter(" ".join(rng.choices(WORDS, k=40)) + f" #{n}" for n in range(10**9))
    stream: list[tuple[str, list[str]]] = []
    for n in range(requests):
        draw = rng.random()
        if stream and draw < exact:
            stream.append(rng.choice(stream))
        elif stream and draw < exact + repeat:
            query, before = rng.choice(stream)
            kept = rng.sample(before, round(len(before) * overlap))
            fresh = [next(passages) for _ in range(docs - len(kept))]
            documents = kept + fresh
            rng.shuffle(documents)
            stream.append((query, documents))
        else:
            stream.append((f"question {n}: " + " ".join(rng.choices(WORDS, k=8)),
                           [next(passages) for _ in range(docs)]))
    return stream


async def replay(stream: list[tuple[str, list[str]]], model: str, cache: ResultCache | None) -> dict[str, Any]:
    upstream = CountingUpstream()
    settings = parse_config({"model_list": [{"model_name": "m", "litellm_params": {
        "model": f"cohere/{model}", "api_key": "k", "api_base": "http://upstream.invalid"}}]}, {})
    router = Router(settings.aliases, transport=upstream, num_retries=0)
    engine = Engine(router, cache=cache)
    paid = saved = Decimal(0)
    statuses: dict[str, int] = {}
    for query, documents in stream:
        call = Call(RerankBody(model="m", query=query, documents=documents, top_n=5), Caller(is_admin=True), 2)
        await engine.rerank(call)
        paid += call.cost
        if call.cache is not None:
            saved += call.cache.saved
            statuses[call.cache.status] = statuses.get(call.cache.status, 0) + 1
    return {"upstream_calls": upstream.calls, "documents_sent": upstream.documents, "paid_usd": float(paid),
            "saved_usd": float(saved), "cache": statuses}


def local_cache() -> ResultCache:
    return ResultCache.from_params(CacheParams(type="local", max_size_mb=256))


async def lookups(url: str, docs: int, rounds: int) -> dict[str, float]:
    """p50/p90 (ms) of one pipelined look-up of `docs` scores, and of a whole attempt with all of them cached."""
    from proxy.cache.keys import score_keys
    from proxy.redis_link import RedisLink
    from proxy.request import make_request

    cache = ResultCache.from_params(CacheParams(type="redis", url=url, timeout=1.0),
                                    key_prefix=f"bench-{uuid.uuid4().hex[:8]}:")
    settings = parse_config({"model_list": [{"model_name": "m", "litellm_params": {
        "model": "cohere/rerank-v3.5", "api_key": "k", "api_base": "http://upstream.invalid"}}]}, {})
    deployment = settings.aliases["m"][0]
    request = make_request("what is the capital", [f"passage {i} " + " ".join(WORDS[i % 20:]) for i in range(docs)])
    use = cache.use_for(None, None, None, None)
    upstream = CountingUpstream()

    async def fetch(sent: Any, dep: Any, transport: Any) -> Any:
        from proxy.invoke import _fetch

        return await _fetch(sent, dep, upstream)

    await cache.scored(request, deployment, upstream, use, fetch)  # fills every score
    await cache.store.settle()
    keys = score_keys(use.namespace, deployment, request)
    store, mget, whole, cpu = cache.store, [], [], []
    for _ in range(rounds):
        started, used = time.perf_counter(), time.process_time()
        found = await store.get_many(keys)
        mget.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        assert found is not None and all(v is not None for v in found)
        started = time.perf_counter()
        ranked = await cache.scored(request, deployment, upstream, use, fetch)
        whole.append((time.perf_counter() - started) * 1000)
        assert ranked.cache == "hit"
    client = store.link.client()
    await client.delete(*keys)
    await cache.aclose()
    assert upstream.calls == 1 and isinstance(store.link, RedisLink)
    return {"documents": docs, "mget_p50_ms": _q(mget, 50), "mget_p90_ms": _q(mget, 90),
            "mget_cpu_p50_ms": _q(cpu, 50),
            "attempt_p50_ms": _q(whole, 50), "attempt_p90_ms": _q(whole, 90)}


def _q(values: list[float], pct: int) -> float:
    return round(statistics.quantiles(values, n=100)[pct - 1], 3)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--docs", type=int, default=20, help="documents per request")
    parser.add_argument("--exact", type=float, default=0.1, help="share of requests repeated as is")
    parser.add_argument("--repeat", type=float, default=0.3, help="share asking an earlier query again")
    parser.add_argument("--overlap", type=float, default=0.5, help="documents shared with that earlier request")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", help="also measure Redis look-ups (one pipelined round trip)")
    parser.add_argument("--lookup-docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    stream = workload(args.requests, args.docs, args.exact, args.repeat, args.overlap, args.seed)
    report: dict[str, Any] = {"pattern": {k: getattr(args, k) for k in ("requests", "docs", "exact", "repeat",
                                                                       "overlap", "seed")}}
    for pricing, model in MODELS.items():
        without, with_cache = await replay(stream, model, None), await replay(stream, model, local_cache())
        report[pricing] = {"model": model, "no_cache": without, "cache": with_cache}
        print(f"{pricing} ({model}): upstream calls {without['upstream_calls']} -> {with_cache['upstream_calls']}, "
              f"documents sent {without['documents_sent']} -> {with_cache['documents_sent']}, "
              f"paid ${without['paid_usd']:.6f} -> ${with_cache['paid_usd']:.6f} "
              f"(saved ${with_cache['saved_usd']:.6f}); cache results {with_cache['cache']}")
    if args.redis_url:
        report["redis_lookup"] = await lookups(args.redis_url, args.lookup_docs, args.rounds)
        print(f"Redis, {args.lookup_docs} scores: look-up p50 {report['redis_lookup']['mget_p50_ms']} ms "
              f"(p90 {report['redis_lookup']['mget_p90_ms']}; client CPU p50 "
              f"{report['redis_lookup']['mget_cpu_p50_ms']} ms), whole cached attempt p50 "
              f"{report['redis_lookup']['attempt_p50_ms']} ms (p90 {report['redis_lookup']['attempt_p90_ms']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
