"""How much the spend writer delays requests, measured without HTTP and its noise in the way.

One process on one core (pin it: `taskset -c 0`) runs an event loop with `--clients` simulated clients in
a closed loop, as `wrk -c 8` drives the server: each request waits for its turn on the loop, does
`--busy-us` of Python work and submits one spend event to the real `SpendWriter` and `Store`. The writer's
batches share the core with the loop, so each batch is a burst of CPU that requests in flight wait
behind; the request latency percentiles show it. `--off` submits no events: the loop's own baseline.

    taskset -c 0 python bench/stalls.py --flush-interval 0.01
    taskset -c 0 python bench/stalls.py --off
    taskset -c 0 python bench/stalls.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import uvloop

from proxy.spend.events import SpendEvent
from proxy.spend.store import Store
from proxy.spend.writer import SpendWriter

KEY = "b" * 64


def busy(microseconds: float) -> None:
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


async def measure(store: Store, args: argparse.Namespace) -> dict[str, float]:
    before = store.spend_logs(api_key_hash=KEY, size=1)[1]
    writer = SpendWriter(store, flush_interval=args.flush_interval)
    await writer.start()
    ids, run = itertools.count(), uuid.uuid4().hex[:8]  # a new run never meets an earlier run's ids
    latencies: list[float] = []
    stop = time.perf_counter() + args.duration

    async def client() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await asyncio.sleep(0)  # the request arrives: wait for the loop
            busy(args.busy_us)
            if not args.off:
                writer.submit(SpendEvent(
                    request_id=f"stall-{run}-{next(ids):016x}", started_at=datetime.now(UTC), model_alias="bench",
                    status=200, latency_ms=1.0, key_hash=KEY, key_alias="bench", deployment="bench-1",
                    provider="cohere", provider_model="rerank-v3.5", search_units=1.0, cost=Decimal("0.002"),
                    guardrails=[{"name": "banned_keywords", "action": "pass"}]))
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client() for _ in range(args.clients)))
    await writer.stop()
    latencies.sort()
    written = store.spend_logs(api_key_hash=KEY, size=1)[1] - before
    return {"requests": len(latencies) / args.duration, "events": next(ids), "written": written,
            **{name: latencies[int(q * (len(latencies) - 1))] for name, q in (("p50", 0.5), ("p99", 0.99),
                                                                               ("p99.9", 0.999))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flush-interval", type=float, default=0.01, help="the writer's spend_flush_interval")
    parser.add_argument("--clients", type=int, default=8, help="simulated clients, one request in flight each")
    parser.add_argument("--busy-us", type=float, default=300, help="Python work per request, microseconds")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--off", action="store_true", help="submit no spend events (the loop's own jitter)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store = Store.connect(args.database_url or f"sqlite:///{Path(work) / 'stalls.db'}")
        if store.get_key(KEY) is None:
            store.create_key(KEY)
        try:
            result = uvloop.run(measure(store, args))
        finally:
            store.close()
    print(f"{result['requests']:,.0f} requests/s, spend events {result['events']:,} (rows written "
          f"{result['written']:,}); request latency p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, "
          f"p99.9 {result['p99.9']:.2f} ms ({args.clients} clients, {args.busy_us:g} µs of work per request, "
          f"flush interval {args.flush_interval} s)")


if __name__ == "__main__":
    main()
