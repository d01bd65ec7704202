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

This file runs the measurements in order; the pieces live beside it: `processes.py` (starting, pinning and
sampling processes), `targets.py` (the servers of each target and their configs), `sampling.py` (one
measurement), `spend_checks.py` (spend rows, leak check, garbage collections), `profiling.py` (py-spy) and
`report.py` (summary and table). `chart.py` draws the docs' picture from a result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from processes import HERE, PY, Server, free_port, git_revision, machine, rss_mb
from profiling import profile
from report import summarise_docs, table
from sampling import MODES, LoadGenerator, measure
from spend_checks import gc_during_measurements, leak_check, spend_check, spend_settled
from targets import ALL_TARGETS, DEFAULT_TARGETS, VARIANT, body_for, build_servers, prepare_proxy


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
