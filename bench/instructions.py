"""CPU instructions per request, counted by valgrind's callgrind: an A/B of code trees that load does not disturb.

Wall-clock and CPU-time benches on a shared 2-core machine move by 10-20% with whatever else runs; the
number of instructions a server executes for a request does not. For each code tree (`--code DIR`, its
directory first on PYTHONPATH) and document count this starts the real server (`rerank-proxy` with the
bench's config: virtual key, SQLite spend rows, metrics, guardrail; or `--floor`, the pass-through floor on
our pool) under `valgrind --tool=callgrind` with instrumentation off, warms it up, then counts the
instructions of all its threads over `--requests` sequential keep-alive requests from an uninstrumented
client, against the same fake upstream the bench uses (`upstream.py`, outside valgrind).

The spend writer's batch (every 500 rows; its flush interval is set to an hour here) is kept out of the
counted windows: a window that would reach a multiple of 500 rows starts after that batch instead. So the
figures are the request path's own cost; the spend writer's share is `bench/run.py`'s to measure.

    python bench/instructions.py --code . --code /work/wt/dca5158 --docs 4,100,1000
    python bench/instructions.py --code . --floor --docs 4            # + the floor on our pool
    python bench/instructions.py --code . --variant-config bench/cache.yaml --docs 4   # full cache hits

Figures are instructions (Ir) per request in thousands; repeated runs agree within ~1% (`--keep DIR` keeps the
callgrind files for `callgrind_annotate`). Two trees can differ by ~1% for no reason in their code: a collection
of the older garbage-collector generations falls in one tree's window and not in the other's; `--windows 5`
averages over more of them. Kernel time (syscalls, page faults) and cache misses are not
instructions: a change that moves those needs `bench/run.py` as well. Work done every few seconds (the model
and key sync) is slowed down in trees that have the setting (`QUIET`), and `--idle S` counts S seconds of an
idle server to check that nothing else runs on a timer.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from processes import HERE, PY, free_port
from processes import http as probe
from targets import FEATURE_CANDIDATES, MASTER_KEY, body_for, merge, proxy_config

QUIET: dict[str, Any] = {"general_settings": {"model_sync_interval": 300}}
"""Periodic work slowed down where the tree has the setting: valgrind runs the server ~50 times slower, so
work done every few seconds would land on each counted request ~50 times more than at full speed."""

BATCH = 500
"""The spend writer writes a batch when this many rows are queued (SpendWriter's batch_size)."""


class Counted:
    """A server under callgrind, instrumentation off except inside `count()`."""

    def __init__(self, argv: list[str], env: dict[str, str], out: Path, health: str, cwd: Path) -> None:
        self.out = out
        self.health = health
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *argv],
            env={"PYTHONHASHSEED": "0", **os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL,
            stderr=(cwd / "server.log").open("wb"), start_new_session=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited; see {cwd / 'server.log'}")
            with contextlib.suppress(OSError):
                if probe("GET", health, timeout=5)[0] == 200:
                    return
            time.sleep(0.5)
        raise SystemExit("server not ready in 600 s")

    def control(self, *options: str) -> None:
        subprocess.run(["callgrind_control", *options, str(self.proc.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=60)

    def count(self, run: Callable[[], object], keep: Path | None = None) -> int:
        """Instructions of every thread of the server while `run()` runs."""
        self.control("-z")
        self.control("-i", "on")
        run()
        self.control("-d")  # before "-i off", which would zero the counts
        self.control("-i", "off")
        dumps = sorted(self.out.parent.glob(self.out.name + ".*"), key=lambda p: p.stat().st_mtime)
        total = instructions(dumps[-1])
        if keep is not None:
            shutil.copy(dumps[-1], keep)
        for dump in dumps:
            dump.unlink()
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def instructions(path: Path) -> int:
    text = path.read_text(errors="replace")
    match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if match is None:
        raise SystemExit(f"no totals in {path}")
    return int(match.group(1))


class Client:
    """Sequential keep-alive requests, checked for 200."""

    def __init__(self, port: int, token: str | None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"content-type": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"

    def send(self, path: str, body: bytes, n: int) -> None:
        for _ in range(n):
            try:
                self.conn.request("POST", path, body, self.headers)
                response = self.conn.getresponse()
            except (ConnectionError, http.client.HTTPException):  # the server closed an idle keep-alive connection
                self.conn.close()
                self.conn.request("POST", path, body, self.headers)
                response = self.conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"{path} answered {response.status}: {answer[:300]!r}")


def send(clients: list[Client], path: str, body: bytes, n: int) -> None:
    """n requests over the clients' connections at once (the first takes the remainder)."""
    if len(clients) == 1:
        clients[0].send(path, body, n)
        return
    share, rest = divmod(n, len(clients))
    with ThreadPoolExecutor(len(clients)) as pool:
        for done in [pool.submit(c.send, path, body, share + (rest if i == 0 else 0)) for i, c in enumerate(clients)]:
            done.result()


def measure_tree(code: Path, args: argparse.Namespace, upstream: str, work: Path) -> dict[int, float]:
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(code), str(HERE)]))}
    if args.floor:
        argv = [PY, str(HERE / "floors.py"), "--client", "pool", "--port", str(port), "--upstream", upstream]
    else:
        extra: dict[str, Any] = {"general_settings": {"spend_flush_interval": 3600}}
        if args.variant_config:
            merge(extra, yaml.safe_load(args.variant_config.read_text()) or {})
        config = proxy_config(upstream, args.docs, f"sqlite:///{work / 'spend.db'}", FEATURE_CANDIDATES, extra)
        quiet = copy.deepcopy(config)
        merge(quiet, QUIET)
        (work / "config.yaml").write_text(yaml.safe_dump(quiet))
        check = subprocess.run([PY, "-m", "proxy", "--config", str(work / "config.yaml"), "--check"],
                               env={**os.environ, **env}, capture_output=True, check=False)
        if check.returncode != 0:  # an older tree without these settings (and without their periodic work)
            (work / "config.yaml").write_text(yaml.safe_dump(config))
        argv = [PY, "-m", "proxy", "--config", str(work / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)]
    out = work / "callgrind.out"
    server = Counted(argv, env, out, f"http://127.0.0.1:{port}/" + ("" if args.floor else "health/liveliness"), work)
    results: dict[int, float] = {}
    try:
        token = None
        if not args.floor:
            status, created = probe("POST", f"http://127.0.0.1:{port}/key/generate",
                                   {"models": [f"bench-{n}" for n in args.docs]}, MASTER_KEY, timeout=120)
            if status != 200:
                raise SystemExit(f"/key/generate answered {status}: {created}")
            token = created["key"]
        clients = [Client(port, token) for _ in range(args.connections)]
        sent = 0
        if args.idle:
            idle = server.count(lambda: time.sleep(args.idle))
            print(f"  {code}  idle {args.idle:g} s: {idle / 1e6:.1f} M instructions", flush=True)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        for n in args.docs:
            path, body = f"/d{n}/v2/rerank" if args.floor else "/v2/rerank", body_for(n)
            send(clients, path, body, args.warmup)
            sent += args.warmup
            total = 0
            for window in range(args.windows):
                if not args.floor and sent // BATCH != (sent + args.requests) // BATCH:
                    pad = BATCH - sent % BATCH  # the spend batch is written here, outside the counted window
                    send(clients, path, body, pad)
                    sent += pad
                    time.sleep(args.settle)
                keep = args.keep / f"callgrind.{code.name}.{n}.{window}" if args.keep else None
                total += server.count(partial(send, clients, path, body, args.requests), keep)
                sent += args.requests
            results[n] = total / (args.requests * args.windows)
            print(f"  {code}  docs={n:<5} {results[n] / 1000:9.1f} k instructions/request", flush=True)
    finally:
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, action="append", required=True,
                        help="a checkout of rerank-proxy (repeat for an A/B); first on the server's PYTHONPATH")
    parser.add_argument("--docs", default="4,100,1000")
    parser.add_argument("--requests", type=int, default=200, help="requests per counted window (below 500)")
    parser.add_argument("--windows", type=int, default=1,
                        help="counted windows per document count, averaged: a garbage collection of the older "
                        "generations lands in some windows and not others (~1%% of a 200-request window)")
    parser.add_argument("--warmup", type=int, default=60, help="requests before counting, per document count")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds for a spend batch to finish")
    parser.add_argument("--connections", type=int, default=1, help="concurrent keep-alive connections")
    parser.add_argument("--idle", type=float, default=0, help="first count this many seconds without requests")
    parser.add_argument("--floor", action="store_true", help="count the pass-through floor on our pool instead")
    parser.add_argument("--variant-config", type=Path, metavar="YAML", help="YAML merged into the proxy's config")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each window's callgrind file there (callgrind_annotate shows the C functions)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    args.docs = [int(d) for d in args.docs.split(",") if d]
    up_port = free_port()
    upstream = subprocess.Popen([PY, str(HERE / "upstream.py"), "--port", str(up_port)], stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    upstream.stdout.readline()
    table: dict[str, dict[int, float]] = {}
    try:
        for code in args.code:
            with tempfile.TemporaryDirectory(prefix="rerank-instr-") as tmp:
                table[f"{len(table) + 1}: {code}"] = measure_tree(code.resolve(), args, f"http://127.0.0.1:{up_port}",
                                                                  Path(tmp))
    finally:
        upstream.terminate()
    print("\nk instructions/request  " + "  ".join(f"{n:>10} docs" for n in args.docs))
    first = next(iter(table.values()))
    for code, row in table.items():
        cells = "  ".join(f"{row[n] / 1000:10.1f}" + (f" {row[n] / first[n]:4.2f}x" if row is not first else "      ")
                          for n in args.docs)
        print(f"{code[-22:]:>22}  {cells}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
