"""py-spy on the busiest proxy worker under saturation: top functions from its collapsed stacks, and its flamegraph."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from processes import PY, ROOT, Server, cpu_seconds
from sampling import LoadGenerator, measure


def profile(gen: LoadGenerator, proxy: Server, everyone: list[Server], args: argparse.Namespace,
            work: Path) -> dict[str, Any]:
    """py-spy on the (busiest) proxy worker while it is saturated: its collapsed stacks (the top functions are
    read from them), then a second recording of the same length for py-spy's own flamegraph SVG."""
    pyspy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(pyspy).exists() and not shutil.which("py-spy"):
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for n in args.docs:
        name = f"profile-{dt.datetime.now():%Y%m%d-%H%M%S}-{n}docs"
        raw, svg = out_dir / f"{name}.txt", out_dir / f"{name}.svg"
        load, error = _record(pyspy, "raw", raw, gen, proxy, everyone, n, args)
        if not raw.exists():
            report[str(n)] = {"error": error}
            continue
        report[str(n)] = {"raw": str(raw), "rps_while_profiling": round(load["rps"]), **top_frames(raw)}
        _record(pyspy, "flamegraph", svg, gen, proxy, everyone, n, args)
        if svg.exists():
            report[str(n)]["svg"] = str(svg)
    return report


def _record(pyspy: str, form: str, output: Path, gen: LoadGenerator, proxy: Server, everyone: list[Server],
            n: int, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """One py-spy recording (`--format form`) of the busiest worker while the proxy is saturated."""
    worker = max(proxy.pids(), key=lambda p: cpu_seconds([p]))
    prefix = ["taskset", "-c", args.load_cpus] if args.load_cpus and shutil.which("taskset") else []
    argv = [*prefix, pyspy, "record", "--pid", str(worker), "--rate", "250", "--gil", "--duration",
            str(int(args.profile)), "--format", form, "--output", str(output)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    load = measure(gen, proxy, everyone, n, "sat", args.profile, args)
    spy.wait(timeout=60)
    return load, (spy.stderr.read() if spy.stderr else "")[-500:]


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
