"""After the run: every request's spend row written, the queue bounded; RSS growth; garbage collections."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from processes import Server, rss_mb
from report import _minus
from sampling import LoadGenerator, measure, metric_total
from targets import database_kind


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
