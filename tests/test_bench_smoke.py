"""The benchmark runs end to end (quick mode, 4 documents) and writes the JSON docs/performance.md describes.

No timing is asserted: speed is what the benchmark reports, not what a test checks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ("httpx", "httpx-aiohttp", "aiohttp", "pyreqwest", "aiosonic", "pool")
TARGETS = ("direct", *(f"floor-{client}" for client in FLOORS), "rerank-proxy", "rerank-proxy-b")


def test_quick_bench_measures_every_target_and_writes_the_results(tmp_path):
    variant = tmp_path / "variant.yaml"
    variant.write_text("general_settings: {disable_spend_logs: true}\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--docs", "4", "--loadgen", "python",
         "--duration", "0.2", "--out", str(tmp_path), "--variant-config", str(variant),
         "--variant-code", str(ROOT)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert {"meta", "raw", "summary", "spend"} <= set(report)
    summary = report["summary"]["4"]
    assert set(summary["targets"]) == set(TARGETS)
    for name, row in summary["targets"].items():
        assert row["sat_rps"] > 0, name
        assert row["errors"] == 0, name
        assert row["cpu_ms_per_req"] is not None, name
        assert set(row["c1"]) == set(row["c8"]) == {"p50_ms", "p90_ms", "p99_ms"}
        assert row["rss_peak_mb"] > 0
        if name != "direct":
            assert {"c1_p50", "c1_p99", "c8_p99"} <= set(row["overhead_ms"])
    ratios = summary["ratios"]
    assert ratios["fastest_floor"] in TARGETS
    assert {"throughput_vs_fastest_floor", "cpu_vs_fastest_floor"} <= set(ratios["rerank-proxy"])
    assert {"throughput_vs_fastest_floor", "cpu_vs_fastest_floor"} <= set(ratios["rerank-proxy-b"])
    features = report["meta"]["features"]
    assert features["rerank-proxy"]["auth"] and features["rerank-proxy"]["spend"] == "SQLite"
    assert features["rerank-proxy-b"]["auth"] and features["rerank-proxy-b"]["spend"] == "off"  # the variant's YAML
    assert features["rerank-proxy-b"]["code"]["path"] == str(ROOT)  # run from that checkout (PYTHONPATH)
    spend = report["spend"]
    assert spend["rows_written"] > 0 and spend["rows_missing"] == 0, spend
    assert spend["queue_max_under_saturation"] is not None
    assert "| rerank-proxy |" in out.stdout


def test_the_stall_probe_writes_every_event_and_reports_request_latency(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "stalls.py"), "--duration", "1", "--busy-us", "1000"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    found = re.search(r"spend events ([\d,]+) \(rows written ([\d,]+)\); request latency p50 [\d.]+ ms, "
                      r"p99 [\d.]+ ms", out.stdout)
    assert found, out.stdout
    events, written = (int(group.replace(",", "")) for group in found.groups())
    assert events > 100 and written == events


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="bench/instructions.py counts with valgrind")
def test_the_instruction_count_compares_two_trees_and_writes_the_figures(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "instructions.py"), "--code", str(ROOT), "--code", str(ROOT),
         "--docs", "4", "--requests", "5", "--warmup", "2", "--json", str(tmp_path / "counts.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert len(counts) == 2
    first, second = (row["4"] for row in counts.values())
    assert first > 100_000 and abs(second / first - 1) < 0.1  # the same tree twice: the same count
