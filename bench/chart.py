"""Render the benchmark picture in the docs (docs/assets/benchmark.png) from a bench result.

`python bench/chart.py` draws the published run (bench/published.json); `--results bench/results/latest.json`
draws a fresh `bench/run.py` run instead (same `summary` shape). Two panels per document count: throughput at
32 connections (rerank-proxy against LiteLLM) and CPU per request (against the fastest pass-through floor).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "published.json"
DEFAULT_OUT = HERE.parent / "docs" / "assets" / "benchmark.png"
PROXY, LITELLM = "rerank-proxy", "litellm"


Series = dict[str, list[float | None]]


def series(report: dict[str, Any]) -> tuple[list[int], Series, Series]:
    """The doc counts, and req/s and CPU ms per target (one value per doc count) from a report's summary."""
    counts = sorted(report["summary"], key=int)
    rps: Series = {PROXY: [], LITELLM: []}
    cpu: Series = {PROXY: [], "fastest floor": [], LITELLM: []}
    for n in counts:
        targets = report["summary"][n]["targets"]
        for name in (PROXY, LITELLM):
            row = targets.get(name) or {}
            rps[name].append(row.get("sat_rps"))
            cpu[name].append(row.get("cpu_ms_per_req"))
        floors = [row["cpu_ms_per_req"] for row in targets.values()
                  if row.get("kind") == "floor" and row.get("cpu_ms_per_req")]
        cpu["fastest floor"].append(min(floors) if floors else None)
    return [int(n) for n in counts], rps, cpu


def draw(report: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts, rps, cpu = series(report)
    labels = [f"{n:,} docs" for n in counts]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    panels = [(axes[0], rps, "requests/s at 32 connections (higher is better)"),
              (axes[1], cpu, "CPU ms per request (lower is better)")]
    colours = {PROXY: "#3f51b5", LITELLM: "#b0b0b0", "fastest floor": "#8bc34a"}
    for ax, values, title in panels:
        names = [name for name, v in values.items() if any(x is not None for x in v)]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(counts))]
            heights = [v or 0 for v in values[name]]
            bars = ax.bar(xs, heights, width, label=name, color=colours[name])
            for bar, value in zip(bars, values[name], strict=True):
                if value:
                    text = f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
                    ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                                va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(len(counts)), labels)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="a bench/run.py JSON result")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the PNG goes")
    args = parser.parse_args(argv)
    print(draw(json.loads(args.results.read_text()), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
