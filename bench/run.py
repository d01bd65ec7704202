"""The benchmark: rerank-proxy against the fake upstream directly and against minimal pass-through floors.

In one run, alternating between targets measurement by measurement (the machine is noisy, so compare
within a run and read the ratios): (a) the fake Cohere upstream directly, (b) minimal FastAPI pass-through
proxies, one per upstream HTTP client, (c) `rerank-proxy --config <bench config>` with a virtual key, spend
to SQLite and whatever metrics/guardrail the server offers, (d) LiteLLM's proxy when `--litellm` finds it.

For 4, 100 and 1,000 documents of ~50 words: saturation throughput (32 connections), latency p50/p90/p99 at
1 and 8 connections, overhead (target minus direct), CPU ms per request of the server processes (from
/proc/<pid>/stat), idle and peak RSS. The server under test is pinned to `--server-cpus`, the load
generator and everything else to `--load-cpus`. Results: `bench/results/<time>.json` and a table.

    pip install -e '.[bench]' && python bench/run.py            # full run (~10 min on 2 cores)
    python bench/run.py --quick                                # smoke run, 4 documents, a few seconds
    python bench/run.py --leak-check 300000 --targets proxy     # RSS before/after N requests
    python bench/run.py --profile 15 --targets proxy --docs 4   # py-spy profile of the proxy under load
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
MASTER_KEY = "sk-bench-master"
UPSTREAM_KEY = "bench-upstream-key"
BLOCKED_TERM = "bench-blocked-term"
FLOOR_CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp", "pyreqwest", "aiosonic", "pool")
VARIANT = "rerank-proxy-b"
PROXY_TARGETS = ("rerank-proxy", VARIANT)
ALL_TARGETS = ("direct", *(f"floor-{c}" for c in FLOOR_CLIENTS), "rerank-proxy", "litellm")
DEFAULT_TARGETS = ("direct", *(f"floor-{c}" for c in FLOOR_CLIENTS), "rerank-proxy")
QUERY = "What is the capital of the United States?"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Config fragments the bench tries to switch on in rerank-proxy; each is kept when `--check` accepts it
# and reported as on only when its probe shows it working (features land in other branches over time).
FEATURE_CANDIDATES: dict[str, dict[str, Any]] = {
    "metrics": {"litellm_settings": {"callbacks": ["prometheus"]}},
    "guardrail": {"guardrails": [{
        "guardrail_name": "bench-banned-words",
        "litellm_params": {"guardrail": "banned_keywords", "mode": "pre_call", "default_on": True,
                           "keywords": [BLOCKED_TERM]},
    }]},
}


# --- documents ------------------------------------------------------------------------------------------

_WORDS = ("the capital city state river north south federal district island ocean population history law court "
          "government president museum library university market harbor mountain valley bridge railway station "
          "airport festival language culture economy industry energy climate forest desert coast border treaty "
          "parliament election century empire colony republic province county village").split()


def documents(n: int, words: int = 50, seed: int = 7) -> list[str]:
    rng = random.Random(seed + n)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)) + f" (document {i})." for i in range(n)]


def body_for(n: int) -> bytes:
    return json.dumps({"model": f"bench-{n}", "query": QUERY, "documents": documents(n)}).encode()


# --- processes ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def rss_mb(pids: list[int], which: str = "VmRSS") -> dict[str, float]:
    """Total over the processes and the largest single one (a uvicorn supervisor holds little)."""
    sizes = [memory_kb(pid).get(which, 0) / 1024 for pid in pids]
    return {"total": round(sum(sizes), 1), "max_process": round(max(sizes, default=0), 1)}


def pin(pids: list[int], cpus: str | None) -> None:
    if not cpus or not shutil.which("taskset"):
        return
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


@dataclass
class Server:
    """One process the bench started (with its workers); `url_for(n)` is where n-document requests go."""

    name: str
    kind: str
    argv: list[str]
    health: str
    url_for: Callable[[int], str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    token: str | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    rss_idle: dict[str, float] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)
    features: dict[str, Any] = field(default_factory=dict)
    database_url: str | None = None

    def start(self, logs: Path, cpus: str | None) -> None:
        self.log_path = logs / f"{self.name}.log"
        log = self.log_path.open("wb")
        prefix = ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []
        self.proc = subprocess.Popen(prefix + self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                                     env={**os.environ, **self.env}, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; its log:\n{self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if http("GET", self.health, timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not become ready in {timeout}s")

    def pids(self) -> list[int]:
        found = descendants(self.proc.pid) if self.proc and self.proc.poll() is None else []
        self.seen_pids.update(found)
        return found

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# --- load generation ------------------------------------------------------------------------------------

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


def parse_cpus(spec: str) -> list[int]:
    cpus: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


# --- targets --------------------------------------------------------------------------------------------

def proxy_config(upstream: str, docs: list[int], database_url: str, features: dict[str, Any],
                 extra: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_list": [
            {"model_name": f"bench-{n}",
             "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": UPSTREAM_KEY,
                                "api_base": f"{upstream}/d{n}"},
             "model_info": {"id": f"bench-{n}"}}
            for n in docs
        ],
        "general_settings": {"master_key": MASTER_KEY, "database_url": database_url},
    }
    for fragment in [*features.values(), extra or {}]:
        merge(config, fragment)
    return config


def merge(into: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value
        else:
            into[key] = value


def proxy_command() -> list[str]:
    script = Path(PY).parent / "rerank-proxy"
    return [str(script)] if script.exists() else [PY, "-m", "proxy"]


def accepted_features(work: Path, upstream: str, docs: list[int], extra: dict[str, Any] | None
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """The feature fragments `rerank-proxy --check` accepts, and why the others were left out."""
    kept: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for name, fragment in FEATURE_CANDIDATES.items():
        path = work / f"check-{name}.yaml"
        config = proxy_config(upstream, docs, f"sqlite:///{work / 'check.db'}", {name: fragment}, extra)
        path.write_text(yaml.safe_dump(config))
        out = subprocess.run([*proxy_command(), "--config", str(path), "--check"], capture_output=True, text=True,
                             check=False)
        if out.returncode == 0:
            kept[name] = fragment
        else:
            notes[name] = "config refused: " + (out.stderr or out.stdout).strip().splitlines()[-1][:200]
    return kept, notes


def build_servers(args: argparse.Namespace, work: Path, upstream_url: str) -> list[Server]:
    servers = []
    for target in args.targets:
        if target.startswith("floor-"):
            client = target.removeprefix("floor-")
            if client == "httpx-aiohttp" and not _importable("httpx_aiohttp"):
                print(f"skipping {target}: pip install httpx-aiohttp (or '.[bench]')", file=sys.stderr)
                continue
            port = free_port()
            servers.append(Server(
                target, "floor", [PY, str(HERE / "floors.py"), "--client", client, "--port", str(port),
                                  "--upstream", upstream_url],
                f"http://127.0.0.1:{port}/", lambda n, p=port: f"http://127.0.0.1:{p}/d{n}/v2/rerank"))
        elif target in PROXY_TARGETS:
            servers.append(proxy_server(target, args, work, upstream_url))
        elif target == "litellm":
            litellm = shutil.which(args.litellm_cmd)
            if not litellm:
                print(f"skipping litellm: '{args.litellm_cmd}' not on PATH (pip install 'litellm[proxy]')",
                      file=sys.stderr)
                continue
            port = free_port()
            config = {"model_list": [
                {"model_name": f"bench-{n}", "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": UPSTREAM_KEY,
                                                               "api_base": f"{upstream_url}/d{n}"}}
                for n in args.docs], "general_settings": {"master_key": MASTER_KEY}}
            (work / "litellm.yaml").write_text(yaml.safe_dump(config))
            servers.append(Server(
                target, "litellm", [litellm, "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                                    "--port", str(port), "--num_workers", str(args.workers)],
                f"http://127.0.0.1:{port}/health/liveliness", lambda n, p=port: f"http://127.0.0.1:{p}/v2/rerank",
                token=MASTER_KEY, cwd=str(work)))
    return servers


def proxy_server(name: str, args: argparse.Namespace, work: Path, upstream_url: str) -> Server:
    """rerank-proxy with the bench config; `rerank-proxy-b` adds `--variant-config` and has its own SQLite file
    (unless the variant names a database), so the spend check of the first stays exact."""
    extra = copy.deepcopy(args.extra_config or {})
    database_url = args.database_url
    if name == VARIANT:
        merge(extra, copy.deepcopy(args.variant_config))
        database_url = f"sqlite:///{work / 'spend-b.db'}"
    port = free_port()
    features, notes = accepted_features(work, upstream_url, args.docs, extra)
    config = proxy_config(upstream_url, args.docs, database_url, features, extra)
    general = config["general_settings"]
    if name == VARIANT and "database_url" not in args.variant_config.get("general_settings", {}):
        general["database_url"] = database_url  # not the one --extra-config may name: the first proxy's
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    server = Server(
        name, "proxy", [*proxy_command(), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                        "--num_workers", str(args.workers)],
        f"http://127.0.0.1:{port}/health/liveliness", lambda n, p=port: f"http://127.0.0.1:{p}/v2/rerank",
        cwd=str(work), database_url=None if general.get("disable_spend_logs") else general["database_url"])
    server.features = {"requested": sorted(features), "notes": notes}
    if name == VARIANT and args.variant_code is not None:
        code = args.variant_code.resolve()
        server.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
        server.features["code"] = {"path": str(code), "git": git_revision(code)}
    return server


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def proxy_base(server: Server) -> str:
    return server.health.rsplit("/health", 1)[0]


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


def count_spend_rows(database_url: str) -> int | None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM spend_logs")).scalar_one()
    except sqlalchemy.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def spend_settled(server: Server, database_url: str, timeout: float = 20.0) -> dict[str, Any]:
    """Once the spend queue is empty: rows in the database and requests the proxy counted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depth = metric_total(server, "rerank_proxy_spend_queue_depth")
        if depth == 0:
            break
        time.sleep(0.2)
    time.sleep(0.2)
    return {"rows": count_spend_rows(database_url),
            "requests": metric_total(server, "rerank_proxy_requests_total")}


def database_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite" if url.startswith("sqlite") else url.split(":")[0]


def prepare_proxy(server: Server, docs: list[int], body_files: dict[int, Path], database_url: str | None) -> None:
    """A virtual key for the bench, then probes: which of the requested features actually work."""
    base = proxy_base(server)
    status, created = http("POST", f"{base}/key/generate", {"key_alias": f"bench-{os.getpid()}-{time.time():.0f}",
                                                           "models": [f"bench-{n}" for n in docs]}, MASTER_KEY)
    if status != 200:
        raise SystemExit(f"/key/generate answered {status}: {created}")
    server.token = created["key"]
    status, _ = http("POST", server.url_for(docs[0]), body_files[docs[0]].read_bytes(), server.token)
    if status != 200:
        raise SystemExit(f"rerank-proxy answered {status} to the bench request")
    probe = json.loads(body_files[docs[0]].read_bytes())
    probe["query"] = f"tell me about {BLOCKED_TERM}"
    blocked, _ = http("POST", server.url_for(docs[0]), probe, server.token)
    metrics, _ = http("GET", f"{base}/metrics", token=MASTER_KEY)
    server.features.update({
        "auth": "virtual key from /key/generate",
        "spend": database_kind(database_url) if database_url else "off",
        "guardrail": blocked == 400,
        "metrics": metrics == 200,
        "workers": None,
    })


# --- measuring ------------------------------------------------------------------------------------------

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


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    stamp = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
    logs = work / "logs"
    logs.mkdir()
    args.database_url = args.database_url or f"sqlite:///{work / 'spend.db'}"
    body_files = {}
    for n in args.docs:
        body_files[n] = work / f"body-{n}.json"
        body_files[n].write_bytes(body_for(n))
    gen = LoadGenerator(args.loadgen, args.load_cpus, body_files)

    up_port = free_port()
    upstream = Server("direct", "direct", [PY, str(HERE / "upstream.py"), "--port", str(up_port)],
                      f"http://127.0.0.1:{up_port}/", lambda n: f"http://127.0.0.1:{up_port}/d{n}/v2/rerank")
    upstream_url = f"http://127.0.0.1:{up_port}"
    servers = [upstream] + build_servers(args, work, upstream_url)
    gc_dir = work / "gc"
    if args.gc_stats:
        gc_dir.mkdir()
        for server in servers[1:]:
            path = os.pathsep.join(filter(None, [str(HERE / "gcprobe"), os.environ.get("PYTHONPATH")]))
            server.env.update({"PYTHONPATH": path, "BENCH_GC_DIR": str(gc_dir)})
    targets = [s for s in servers if s.name in args.targets]
    results: dict[str, Any] = {str(n): {t.name: {m: [] for m in MODES} for t in targets} for n in args.docs}
    extras: dict[str, Any] = {}
    try:
        for server in servers:
            server.start(logs, args.load_cpus)
        for server in servers:
            server.wait_ready()
        for server in servers:
            server.rss_idle = rss_mb(server.pids())
            if server.kind == "proxy":
                prepare_proxy(server, args.docs, body_files, server.database_url)
                if server.name == "rerank-proxy" and server.database_url:
                    extras["spend_baseline"] = spend_settled(server, server.database_url)
                server.features["workers"] = args.workers
                server.rss_idle = rss_mb(server.pids())
        print(f"load generator: {gen.describe()}; server CPUs {args.server_cpus}, load CPUs {args.load_cpus}; "
              f"targets: {', '.join(t.name for t in targets)}", flush=True)
        for n in args.docs:
            for target in targets if args.warmup > 0 else ():  # warm-up: pools, caches, first-call costs
                measure(gen, target, servers, n, "c8", args.warmup, args)
            for r in range(args.rounds):
                order = targets[r % len(targets):] + targets[:r % len(targets)]
                for mode in MODES:
                    for target in order:
                        result = measure(gen, target, servers, n, mode, args.duration, args)
                        results[str(n)][target.name][mode].append(result)
                        print(f"  docs={n:<5} round={r + 1} {mode:<4} {target.name:<20} {result['rps']:>9.0f} req/s "
                              f"p50 {result['p50_ms']:.2f} p99 {result['p99_ms']:.2f} ms "
                              f"cpu {result['cpu_ms_per_req'] or 0:.3f} ms/req ({result['cpu_util'] or 0:.0%} busy)",
                              flush=True)
        proxy = next((t for t in targets if t.name == "rerank-proxy"), None)
        if proxy is not None and args.leak_check:
            extras["leak_check"] = leak_check(gen, proxy, servers, args)
        if proxy is not None and args.profile:
            extras["profile"] = profile(gen, proxy, servers, args, work)
        peaks = {t.name: rss_mb(t.pids(), "VmHWM") for t in targets}
        if proxy is not None and proxy.database_url:
            extras["spend"] = spend_check(proxy, proxy.database_url, extras.pop("spend_baseline"), results)
    finally:
        for server in reversed(servers):
            server.stop()
    if args.gc_stats:
        extras["gc"] = gc_during_measurements(gc_dir, servers, results)

    report = {
        "meta": {
            "started": stamp.isoformat(timespec="seconds"),
            "machine": machine(),
            "git": git_revision(),
            "loadgen": gen.describe(),
            "options": {k: v for k, v in vars(args).items() if k not in ("func",)},
            "features": {t.name: t.features for t in targets if t.features},
            "documents_words": 50,
            "body_bytes": {str(n): body_files[n].stat().st_size for n in args.docs},
        },
        "raw": results,
        "summary": {},
        **extras,
    }
    kinds = {t.name: t.kind for t in targets}
    idle = {t.name: t.rss_idle for t in targets}
    for n in args.docs:
        report["summary"][str(n)] = summarise_docs(results[str(n)], kinds, idle, peaks)
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return report


def summarise_docs(raw: dict[str, Any], kinds: dict[str, str], idle: dict[str, dict[str, float]],
                   peaks: dict[str, dict[str, float]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, kind in kinds.items():
        modes = {m: summarise(raw[name][m]) for m in MODES}
        table[name] = {
            "kind": kind,
            "sat_rps": modes["sat"]["rps"],
            "sat_busy": modes["sat"]["cpu_util"],
            "cpu_ms_per_req": modes["sat"]["cpu_ms_per_req"],
            "rps_per_cpu_second": round(1000 / modes["sat"]["cpu_ms_per_req"])
            if modes["sat"]["cpu_ms_per_req"] else None,
            "c1": {k: modes["c1"][k] for k in ("p50_ms", "p90_ms", "p99_ms")},
            "c8": {k: modes["c8"][k] for k in ("p50_ms", "p90_ms", "p99_ms")},
            "sat": {k: modes["sat"][k] for k in ("p50_ms", "p90_ms", "p99_ms")},
            "errors": sum(modes[m]["errors"] for m in MODES),
            "rss_idle_mb": idle[name].get("total"),
            "rss_idle_max_process_mb": idle[name].get("max_process"),
            "rss_peak_mb": peaks[name]["total"],
            "rss_peak_max_process_mb": peaks[name]["max_process"],
        }
    direct = table.get("direct")
    for name, row in table.items():
        if direct is None or name == "direct":
            continue
        row["overhead_ms"] = {
            f"{mode}_{p}": _minus(row[mode][f"{p}_ms"], direct[mode][f"{p}_ms"])
            for mode in ("c1", "c8") for p in ("p50", "p90", "p99")
        }
    floors = {k: v for k, v in table.items() if v["kind"] == "floor" and v["rps_per_cpu_second"]}
    ratios: dict[str, Any] = {}
    if floors:  # fastest = least CPU per request: saturation req/s moves with whatever else the machine runs
        fastest = max(floors, key=lambda k: floors[k]["rps_per_cpu_second"])
        ratios["fastest_floor"] = fastest
        for name, row in table.items():
            if row["kind"] not in ("proxy", "litellm"):
                continue
            best = floors[fastest]
            ratios[name] = {
                "throughput_vs_fastest_floor": _ratio(row["sat_rps"], best["sat_rps"]),
                "rps_per_cpu_vs_fastest_floor": _ratio(row["rps_per_cpu_second"], best["rps_per_cpu_second"]),
                "cpu_vs_fastest_floor": _ratio(row["cpu_ms_per_req"], best["cpu_ms_per_req"]),
                "c8_p99_vs_fastest_floor": _ratio(row["c8"]["p99_ms"], best["c8"]["p99_ms"]),
            }
    if "rerank-proxy" in table and "litellm" in table:
        ratios["rerank-proxy"]["throughput_vs_litellm"] = _ratio(table["rerank-proxy"]["sat_rps"],
                                                                 table["litellm"]["sat_rps"])
    if direct is not None:
        ratios["upstream_ceiling_rps"] = direct["sat_rps"]
    return {"targets": table, "ratios": ratios}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def gc_during_measurements(gc_dir: Path, servers: list[Server], results: dict[str, Any]) -> dict[str, Any]:
    """Per document count, target and mode: collections of each generation and their pauses while loaded."""
    events: dict[int, list[list[float]]] = {}
    for file in gc_dir.glob("*.json"):
        events[int(file.stem)] = json.loads(file.read_text())
    owners = {s.name: [pid for pid in events if pid in s.seen_pids] for s in servers}
    owners = {name: pids for name, pids in owners.items() if pids}  # the upstream is not probed
    out: dict[str, Any] = {}
    for n, per_target in results.items():
        for name, modes in per_target.items():
            if name not in owners:
                continue
            for mode, rounds in modes.items():
                stats = {g: {"count": 0, "pause_ms": 0.0, "max_ms": 0.0} for g in (0, 1, 2)}
                for result in rounds:
                    lo, hi = result["window"]
                    for pid in owners.get(name, ()):
                        for at, generation, pause in events[pid]:
                            if lo <= at <= hi:
                                entry = stats[generation]
                                entry["count"] += 1
                                entry["pause_ms"] = round(entry["pause_ms"] + pause, 2)
                                entry["max_ms"] = round(max(entry["max_ms"], pause), 2)
                requests = sum(r["requests"] for r in rounds)
                out.setdefault(n, {}).setdefault(name, {})[mode] = {
                    "requests": requests, **{f"gen{g}": v for g, v in stats.items()}}
    return out


def spend_check(proxy: Server, database_url: str, baseline: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Every request the proxy served during the bench has its spend row, and the queue stayed bounded."""
    settled = spend_settled(proxy, database_url)
    rows = _minus(settled["rows"], baseline["rows"])
    requests = _minus(settled["requests"], baseline["requests"])
    depths = [r["spend_queue_max"] for per_target in results.values()
              for r in per_target[proxy.name].get("sat", []) if "spend_queue_max" in r]
    return {"database": database_kind(database_url), "rows_written": rows, "requests_served": requests,
            "rows_missing": None if rows is None or requests is None else int(requests - rows),
            "queue_max_under_saturation": max(depths) if depths else None}


# --- leak check and profile -----------------------------------------------------------------------------

def leak_check(gen: LoadGenerator, proxy: Server, everyone: list[Server], args: argparse.Namespace) -> dict[str, Any]:
    """RSS after a warm-up, then after `--leak-check` more requests (4 documents, 32 connections)."""
    n = min(args.docs)
    warm = measure(gen, proxy, everyone, n, "sat", max(args.duration, 5), args)
    before = rss_mb(proxy.pids())
    samples, done = [], 0
    print(f"leak check: {args.leak_check} requests after a warm-up of {warm['requests']}; RSS {before}", flush=True)
    while done < args.leak_check:
        chunk = measure(gen, proxy, everyone, n, "sat", 20, args)
        done += chunk["requests"]
        samples.append({"requests": done, "rss_mb": rss_mb(proxy.pids())["total"], "rps": round(chunk["rps"])})
        print(f"  {done:>9} requests  RSS {samples[-1]['rss_mb']} MB  {chunk['rps']:.0f} req/s", flush=True)
    after = rss_mb(proxy.pids())
    return {"requests": done, "warmup_requests": warm["requests"], "rss_before_mb": before, "rss_after_mb": after,
            "growth_mb": round(after["total"] - before["total"], 1), "samples": samples}


def profile(gen: LoadGenerator, proxy: Server, everyone: list[Server], args: argparse.Namespace,
            work: Path) -> dict[str, Any]:
    """py-spy on the (busiest) proxy worker while it is saturated; SVG and collapsed stacks kept in results."""
    pyspy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(pyspy).exists() and not shutil.which("py-spy"):
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for n in args.docs:
        pids = proxy.pids()
        worker = max(pids, key=lambda p: cpu_seconds([p]))
        name = f"profile-{dt.datetime.now():%Y%m%d-%H%M%S}-{n}docs"
        raw, svg = out_dir / f"{name}.txt", out_dir / f"{name}.svg"
        prefix = ["taskset", "-c", args.load_cpus] if args.load_cpus and shutil.which("taskset") else []
        argv = [*prefix, pyspy, "record", "--pid", str(worker), "--rate", "250", "--gil", "--duration",
                str(int(args.profile)), "--format", "raw", "--output", str(raw)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        load = measure(gen, proxy, everyone, n, "sat", args.profile, args)
        spy.wait(timeout=60)
        if not raw.exists():
            report[str(n)] = {"error": (spy.stderr.read() if spy.stderr else "")[-500:]}
            continue
        report[str(n)] = {"raw": str(raw), "rps_while_profiling": round(load["rps"]), **top_frames(raw)}
        with contextlib.suppress(Exception):
            svg.write_text(flamegraph_svg(raw))
            report[str(n)]["svg"] = str(svg)
    return report


def top_frames(raw: Path, limit: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f is not None]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str], n: int = limit) -> list[list[Any]]:
        return [[name, round(100 * c / total, 2)] for name, c in counter.most_common(n)]

    by_package: Counter[str] = Counter()
    for frame, count in own.items():
        by_package[package_of(frame)] += count
    ours = Counter({k: v for k, v in inclusive.items() if k.startswith("proxy/")})
    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(inclusive),
            "proxy_inclusive_pct": share(ours, 40), "self_by_package_pct": share(by_package, 20)}


def package_of(frame: str) -> str:
    path = frame.split(":", 1)[0]
    if path.startswith("proxy/"):
        return "/".join(path.split("/")[:2]).removesuffix(".py")
    return path.split("/", 1)[0].removesuffix(".py")


def short_frame(frame: str) -> str | None:
    """`serve (proxy/api/rerank.py:72)` → `proxy/api/rerank.py:serve`; thread/process frames dropped."""
    name, _, where = frame.partition(" (")
    if not where:
        return None
    path = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.split(str(ROOT) + "/", 1)[-1]
    return f"{path}:{name}"


def flamegraph_svg(raw: Path) -> str:
    """A minimal icicle SVG of the collapsed stacks (py-spy's own SVG needs a second recording)."""
    tree: dict[str, Any] = {"n": 0, "c": {}}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        node = tree
        node["n"] += int(count_text)
        for frame in stack.split(";"):
            label = short_frame(frame) or frame
            node = node["c"].setdefault(label, {"n": 0, "c": {}})
            node["n"] += int(count_text)
    width, row = 1800.0, 16
    parts: list[str] = []

    def draw(node: dict[str, Any], x: float, depth: int, label: str) -> int:
        w = width * node["n"] / max(tree["n"], 1)
        deepest = depth
        if w >= 0.5 and depth >= 0:
            hue = 20 + (hash(label) % 40)
            text = label.replace("&", "&amp;").replace("<", "&lt;")
            parts.append(f'<g><title>{text} ({100 * node["n"] / tree["n"]:.1f}%)</title>'
                         f'<rect x="{x:.1f}" y="{depth * row}" width="{w:.1f}" height="{row - 1}" '
                         f'fill="hsl({hue},80%,60%)"/>' + (f'<text x="{x + 2:.1f}" y="{depth * row + 12}" '
                         f'font-size="10">{text[: int(w / 6)]}</text>' if w > 40 else "") + "</g>")
        for child_label, child in sorted(node["c"].items()):
            deepest = max(deepest, draw(child, x, depth + 1, child_label))
            x += width * child["n"] / max(tree["n"], 1)
        return deepest

    depth = draw(tree, 0.0, -1, "all")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(width)}" height="{(depth + 2) * row}" '
            f'font-family="monospace">{"".join(parts)}</svg>')


# --- output ---------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version()}


def git_revision(root: Path = ROOT) -> str | None:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or None


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    lines = []
    head = ("| target | req/s @32 (busy) | CPU ms/req | req per CPU-s | p50/p90/p99 @1 (ms) | p50/p90/p99 @8 (ms) | "
            "overhead p50/p99 @1 | overhead p99 @8 | RSS idle/peak MB |")
    for n, summary in report["summary"].items():
        lines += ["", f"{n} documents", "", head, "|" + "---|" * 9]
        for name, row in summary["targets"].items():
            over = row.get("overhead_ms") or {}
            busy = f" ({row['sat_busy']:.0%})" if row.get("sat_busy") is not None else ""
            lines.append(
                f"| {name} | {fmt(row['sat_rps'], 0)}{busy} | {fmt(row['cpu_ms_per_req'], 3)} | "
                f"{fmt(row.get('rps_per_cpu_second'), 0)} | "
                f"{fmt(row['c1']['p50_ms'])} / {fmt(row['c1']['p90_ms'])} / {fmt(row['c1']['p99_ms'])} | "
                f"{fmt(row['c8']['p50_ms'])} / {fmt(row['c8']['p90_ms'])} / {fmt(row['c8']['p99_ms'])} | "
                f"{fmt(over.get('c1_p50'))} / {fmt(over.get('c1_p99'))} | {fmt(over.get('c8_p99'))} | "
                f"{fmt(row['rss_idle_mb'], 0)} / {fmt(row['rss_peak_mb'], 0)} |")
        ratios = summary["ratios"]
        for name, r in ratios.items():
            if isinstance(r, dict):
                parts = ", ".join(f"{k.replace('_', ' ')} {fmt(v, 2)}x" for k, v in r.items())
                lines.append(f"\n{name} vs fastest floor ({ratios.get('fastest_floor')}): {parts}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    half = max(1, len(cpus) // 2)
    parser = argparse.ArgumentParser(description="Benchmark rerank-proxy against the upstream and minimal floors.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--docs", default="4,100,1000", help="document counts, comma-separated")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help=f"comma-separated, from: {', '.join(ALL_TARGETS)}; 'proxy' = rerank-proxy")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target and doc count")
    parser.add_argument("--server-cpus", default=",".join(map(str, cpus[:half])) if len(cpus) > 1 else None,
                        help="CPU list for the server under test (taskset -c)")
    parser.add_argument("--load-cpus", default=",".join(map(str, cpus[half:])) if len(cpus) > 1 else None,
                        help="CPU list for the load generator and the idle servers")
    parser.add_argument("--workers", type=int, default=1, help="rerank-proxy --num_workers")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--extra-config", type=Path, help="YAML merged into rerank-proxy's bench config")
    parser.add_argument("--variant-config", type=Path, metavar="YAML",
                        help=f"YAML merged into a second rerank-proxy ('{VARIANT}', its own SQLite file) measured "
                        "alternately with the first: an A/B of two configurations in one run")
    parser.add_argument("--variant-code", type=Path, metavar="DIR",
                        help=f"run '{VARIANT}' from another checkout of rerank-proxy (its directory first on "
                        "PYTHONPATH): an A/B of two commits in one run, e.g. a `git worktree` of main")
    parser.add_argument("--database-url", help="rerank-proxy's spend database (default: a new SQLite file), e.g. "
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--litellm-cmd", default="litellm", help="LiteLLM proxy command, for the 'litellm' target")
    parser.add_argument("--leak-check", type=int, default=0, metavar="N", help="RSS before/after N proxy requests")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS", help="py-spy the proxy under load")
    parser.add_argument("--gc-stats", action="store_true",
                        help="record garbage collections in the servers and report the pauses per measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 documents, 1 round of 1 s")
    parser.add_argument("--out", default=str(HERE / "results"), help="where the JSON results go")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory (logs, configs)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the table of an earlier run and exit")
    args = parser.parse_args(argv)
    given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
    if args.quick:
        args.docs = args.docs if "--docs" in given else "4"
        args.duration = args.duration if "--duration" in given else 1.0
        args.rounds = args.rounds if "--rounds" in given else 1
        args.warmup = args.warmup if "--warmup" in given else 0
    args.docs = [int(d) for d in str(args.docs).split(",") if d]
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.targets = ["rerank-proxy" if t == "proxy" else t for t in names]
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    args.extra_config = yaml.safe_load(args.extra_config.read_text()) if args.extra_config else None
    args.variant_config = yaml.safe_load(args.variant_config.read_text()) or {} if args.variant_config else None
    if args.variant_code is not None and args.variant_config is None:
        args.variant_config = {}
    if args.variant_config is not None:
        if "rerank-proxy" not in args.targets:
            parser.error("--variant-config and --variant-code need the rerank-proxy target")
        args.targets.insert(args.targets.index("rerank-proxy") + 1, VARIANT)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        report = json.loads(args.table.read_text())
        for n, summary in report["summary"].items():  # re-summarised from the raw rounds: same numbers, new columns
            rows = summary["targets"]

            def rss(row: dict[str, Any], which: str) -> dict[str, Any]:
                return {"total": row[f"rss_{which}_mb"], "max_process": row.get(f"rss_{which}_max_process_mb")}

            report["summary"][n] = summarise_docs(
                report["raw"][n], {k: r["kind"] for k, r in rows.items()},
                {k: rss(r, "idle") for k, r in rows.items()}, {k: rss(r, "peak") for k, r in rows.items()})
        print(table(report))
        return 0
    report = run_bench(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    text = json.dumps(report, indent=2, default=str)
    path.write_text(text)
    (out / "latest.json").write_text(text)
    print(table(report))
    for name, features in report["meta"]["features"].items():
        print(f"\n{name} features: {json.dumps(features)}")
    if "spend" in report:
        spend = report["spend"]
        print(f"spend ({spend['database']}): {spend['rows_written']} rows for {spend['requests_served']} requests "
              f"served (missing: {spend['rows_missing']}); spend queue at most "
              f"{spend['queue_max_under_saturation']} rows under saturation")
    if "leak_check" in report:
        leak = report["leak_check"]
        print(f"leak check: {leak['requests']} requests, RSS {leak['rss_before_mb']['total']} → "
              f"{leak['rss_after_mb']['total']} MB ({leak['growth_mb']:+} MB)")
    for n, per_target in (report.get("gc") or {}).items():
        print(f"\ngarbage collection while loaded, {n} documents (count / total pause ms / longest ms):")
        for name, modes in per_target.items():
            parts = [f"{mode}: gen2 {m['gen2']['count']} / {m['gen2']['pause_ms']:.0f} / {m['gen2']['max_ms']:.0f}, "
                     f"gen0+1 {m['gen0']['count'] + m['gen1']['count']} / "
                     f"{m['gen0']['pause_ms'] + m['gen1']['pause_ms']:.0f}" for mode, m in modes.items()]
            print(f"  {name:<20} " + "; ".join(parts))
    for n, prof in (report.get("profile") or {}).items():
        print(f"\nprofile, {n} documents ({prof.get('samples')} samples; {prof.get('raw')}): top self time")
        for name, pct in prof.get("self_pct", [])[:15]:
            print(f"  {pct:6.2f}%  {name}")
        print("  by package (self):", ", ".join(f"{name} {pct:.1f}%" for name, pct in prof.get("self_by_package_pct",
                                                                                                    [])[:12]))
        print("  rerank-proxy functions (inclusive):")
        for name, pct in prof.get("proxy_inclusive_pct", [])[:15]:
            print(f"  {pct:6.2f}%  {name}")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
