"""One measurement: load from wrk (or bench/loadgen.py) against a target, with its CPU, RSS and spend queue."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from processes import HERE, PY, Server, cpu_seconds, http, parse_cpus, pin, rss_mb
from targets import MASTER_KEY, proxy_base


class LoadGenerator:
    def __init__(self, kind: str, cpus: str | None, body_files: dict[int, Path]):
        if kind == "auto":
            kind = "wrk" if shutil.which("wrk") else "python"
        if kind == "wrk" and not shutil.which("wrk"):
            raise SystemExit("wrk is not installed (apt-get install wrk), use --loadgen python")
        self.kind = kind
        self.cpus = cpus
        self.threads = max(1, len(parse_cpus(cpus)) if cpus else 1)
        self.body_files = body_files

    def describe(self) -> str:
        if self.kind == "wrk":
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
            text = (out.stdout or out.stderr).split()
            return " ".join(text[:2]) if text else "wrk"
        return f"bench/loadgen.py ({self.threads} process(es))"

    def run(self, url: str, n: int, connections: int, duration: float, token: str | None) -> dict[str, float]:
        threads = min(self.threads, connections)
        if self.kind == "wrk":
            # wrk takes whole seconds
            argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
                    "--timeout", "30s", "-s", str(HERE / "post.lua"), url]
            env = {**os.environ, "BENCH_BODY": str(self.body_files[n]), "BENCH_AUTH": token or ""}
        else:
            argv = [PY, str(HERE / "loadgen.py"), "--url", url, "--body", str(self.body_files[n]),
                    "-c", str(connections), "-d", str(duration), "-p", str(threads)]
            argv += ["--auth", token] if token else []
            env = dict(os.environ)
        if self.cpus and shutil.which("taskset"):
            argv = ["taskset", "-c", self.cpus, *argv]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 120, check=False)
        for line in out.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                result = json.loads(line[len("BENCH_JSON "):])
                result["rps"] = result["requests"] / result["duration_s"] if result["duration_s"] else 0.0
                return result
        raise SystemExit(f"load generator printed no result:\n{out.stdout}\n{out.stderr}")


MODES = {"sat": 32, "c1": 1, "c8": 8}


def measure(gen: LoadGenerator, target: Server, everyone: list[Server], n: int, mode: str, duration: float,
            args: argparse.Namespace) -> dict[str, Any]:
    """Pin the target to the server CPUs and the rest to the load CPUs, run the load, read CPU and RSS."""
    for server in everyone:
        if server is not target:
            pin(server.pids(), args.load_cpus)
    pids = target.pids()
    pin(pids, args.server_cpus)
    before = cpu_seconds(pids)
    started = time.time()
    watch = QueueWatch(target) if target.kind == "proxy" and mode == "sat" else contextlib.nullcontext()
    with watch:
        result = gen.run(target.url_for(n), n, MODES[mode], duration, target.token)
    used = cpu_seconds(pids) - before
    if isinstance(watch, QueueWatch) and watch.depths:
        result["spend_queue_max"] = max(watch.depths)
    result["window"] = [started, time.time()]
    result["cpu_ms_per_req"] = used * 1000 / result["requests"] if result["requests"] else None
    result["cpu_util"] = used / result["duration_s"] if result["duration_s"] else None
    result["rss_mb"] = rss_mb(pids)["total"]
    return result


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of each number."""
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_ms_per_req", "cpu_util")
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in rounds if r.get(key) is not None]
        out[key] = round(statistics.median(values), 4) if values else None
    out["errors"] = sum(r["errors"] + r["non_2xx"] for r in rounds)
    out["requests"] = sum(r["requests"] for r in rounds)
    return out


def metric_total(server: Server, name: str) -> float | None:
    """The sum of one metric's samples from the proxy's /metrics (all label sets, all workers)."""
    try:
        status, text = http("GET", f"{proxy_base(server)}/metrics", token=MASTER_KEY, timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    text = text.decode() if isinstance(text, bytes) else str(text)
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " ")]
    return sum(values) if values else None


class QueueWatch:
    """Samples the proxy's spend queue depth from /metrics while a measurement runs (bounded or not?).

    Twice a second: each scrape renders every metric in the server under test, CPU that counts in its figures.
    """

    def __init__(self, server: Server, every: float = 0.5):
        self.server, self.every, self.depths = server, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            depth = metric_total(self.server, "rerank_proxy_spend_queue_depth")
            if depth is not None:
                self.depths.append(depth)
            if self._stop.wait(self.every):
                return
