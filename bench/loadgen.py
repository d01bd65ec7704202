"""A multi-process keep-alive HTTP load generator, used when `wrk` is not installed.

Each process runs its share of the connections on raw asyncio streams (uvloop when present) with the
request bytes rendered once; a connection sends, reads one response (content-length framed), repeats.
Prints the same `BENCH_JSON {...}` line as `bench/post.lua` does for wrk.

    python bench/loadgen.py --url http://127.0.0.1:8100/d4/v2/rerank --body body.json -c 32 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from urllib.parse import urlsplit


def render_request(url: str, body: bytes, auth: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n" + (f"authorization: Bearer {auth}\r\n" if auth else "") + "\r\n")
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + body


async def _connection(host: str, port: int, payload: bytes, deadline: float, limit: int | None,
                      latencies: list[float], stats: dict[str, int]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["errors"] += 1
        return
    try:
        while time.perf_counter() < deadline and (limit is None or stats["requests"] < limit):
            start = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            stats["requests"] += 1
            if not 200 <= status < 300:
                stats["non_2xx"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        stats["errors"] += 1
    finally:
        writer.close()


async def _run(host: str, port: int, payload: bytes, connections: int, duration: float,
               limit: int | None) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    stats = {"requests": 0, "errors": 0, "non_2xx": 0}
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_connection(host, port, payload, deadline, limit, latencies, stats)
                           for _ in range(connections)))
    return latencies, stats, time.perf_counter() - started


def _worker(args: tuple) -> tuple[list[float], dict[str, int], float]:
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_run(*args))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def run(url: str, body: bytes, *, connections: int, duration: float, processes: int = 1,
        auth: str | None = None, limit: int | None = None) -> dict[str, float]:
    host, port, payload = render_request(url, body, auth)
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    per_limit = None if limit is None else -(-limit // processes)
    jobs = [(host, port, payload, share, duration, per_limit) for share in shares]
    if processes == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            results = pool.map(_worker, jobs)
    latencies = sorted(x for r in results for x in r[0])
    elapsed = max(r[2] for r in results)
    totals = {k: sum(r[1][k] for r in results) for k in ("requests", "errors", "non_2xx")}
    ms = 1000.0
    return {
        "requests": totals["requests"], "duration_s": elapsed, "errors": totals["errors"],
        "non_2xx": totals["non_2xx"],
        "p50_ms": percentile(latencies, 50) * ms, "p90_ms": percentile(latencies, 90) * ms,
        "p99_ms": percentile(latencies, 99) * ms, "max_ms": (latencies[-1] if latencies else 0) * ms,
        "mean_ms": (sum(latencies) / len(latencies) * ms) if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="file with the JSON body")
    parser.add_argument("--auth", help="bearer token")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-p", "--processes", type=int, default=1)
    parser.add_argument("-n", "--requests", type=int, help="stop after about this many requests")
    args = parser.parse_args()
    with open(args.body, "rb") as file:
        body = file.read()
    result = run(args.url, body, connections=args.connections, duration=args.duration, processes=args.processes,
                 auth=args.auth, limit=args.requests)
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
