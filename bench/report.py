"""The run's summary (medians, overheads, ratios to the fastest floor) and its table."""

from __future__ import annotations

from typing import Any

from sampling import MODES, summarise


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
