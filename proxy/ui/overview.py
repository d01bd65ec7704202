"""The overview's numbers: requests, errors, spend, cache savings and latency over a window, by model.

The last hour (per minute) reads the spend rows by their `started_at` index, with exact latency percentiles
from at most the newest 50,000 of them; the day (per hour) and 30 days (per day) read the hourly rollups, with
percentiles from their latency histograms (within a bucket, 26%, of the exact value), so their cost does not
grow with the traffic and they cover spend rows that log retention removed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ..spend.activity import Bucket
from ..spend.latency import BUCKETS
from ..spend.latency import add as add_counts
from ..spend.latency import percentile as histogram_percentile
from .charts import line_chart

WINDOWS = {  # name → (length, bucket seconds, label format)
    "hour": (timedelta(hours=1), 60, "%H:%M"),
    "day": (timedelta(days=1), 3600, "%H:%M"),
    "month": (timedelta(days=30), 86400, "%b %d"),
}
TOP_MODELS = 5
"""Models charted one by one; the rest are summed as "other"."""


@dataclass
class Overview:
    totals: dict[str, str]
    charts: list[str]


Latency = tuple[list[float | None], list[float | None], float | None, float | None]
"""p50 and p99 per time bucket, then over the whole window."""


def build_overview(store: object, window: str, now: datetime | None = None) -> Overview:
    """Runs in a worker thread: two bounded reads, then the charts."""
    length, step, fmt = WINDOWS[window]
    now = now or datetime.now(UTC)
    end = datetime.fromtimestamp((int(now.timestamp()) // step + 1) * step, UTC)
    start = end - length
    times = [start + timedelta(seconds=step * i) for i in range(int(length.total_seconds()) // step)]
    index = {int(t.timestamp()): i for i, t in enumerate(times)}
    if step < 3600:
        buckets = store.activity(start, end, step)  # type: ignore[attr-defined]
        latencies = store.latencies(start, end)  # type: ignore[attr-defined]
        p50, p99, p50_all, p99_all = _exact_latency(latencies, index, step)
    else:
        buckets, (p50, p99, p50_all, p99_all) = _from_rollups(store, start, end, step, index)
    ranked: dict[str, int] = defaultdict(int)
    for b in buckets:
        ranked[b.model_alias] += b.requests
    shown = [alias for alias, _ in sorted(ranked.items(), key=lambda kv: -kv[1])[:TOP_MODELS]]

    def series(measure: str) -> dict[str, list[float | None]]:
        lines: dict[str, list[float | None]] = {alias: [0.0] * len(times) for alias in shown}
        other: list[float | None] = [0.0] * len(times)
        for b in buckets:
            i = index.get(int(b.start.timestamp()))
            if i is None:
                continue
            target = lines.get(b.model_alias, other)
            target[i] = (target[i] or 0.0) + float(getattr(b, measure))
        if any(other):
            lines["other"] = other
        return lines or {"(no requests)": [0.0 for _ in times]}

    requests = sum(b.requests for b in buckets)
    errors = sum(b.errors for b in buckets)
    spend = sum((b.spend for b in buckets), Decimal(0))
    saved = sum((b.saved for b in buckets), Decimal(0))
    totals = {
        "Requests": f"{requests:,}",
        "Errors": f"{errors:,} ({errors / requests:.1%})" if requests else "0",
        "Spend": f"${spend:,.4f}",
        "Saved by the cache": f"${saved:,.4f}",
        "p50 / p99 latency": f"{_ms(p50_all)} / {_ms(p99_all)}" if p50_all is not None else "–",
    }
    charts = [
        line_chart("Requests", times, series("requests"), time_format=fmt),
        line_chart("Errors", times, series("errors"), time_format=fmt),
        line_chart("Spend (USD)", times, series("spend"), unit="$", time_format=fmt),
        line_chart("Saved by the cache (USD)", times, series("saved"), unit="$", time_format=fmt),
        line_chart("Latency (ms)", times, {"p50": p50, "p99": p99}, unit="", time_format=fmt),
    ]
    return Overview(totals, charts)


def _exact_latency(latencies: list[tuple[datetime, float]], index: dict[int, int], step: int) -> Latency:
    per_bucket: dict[int, list[float]] = defaultdict(list)
    for started, ms in latencies:
        i = index.get(int(started.timestamp()) // step * step)
        if i is not None:
            per_bucket[i].append(ms)
    every = [ms for _, ms in latencies]
    return ([_percentile(per_bucket.get(i), 0.50) for i in range(len(index))],
            [_percentile(per_bucket.get(i), 0.99) for i in range(len(index))],
            _percentile(every, 0.5), _percentile(every, 0.99))


def _from_rollups(store: object, start: datetime, end: datetime, step: int,
                  index: dict[int, int]) -> tuple[list[Bucket], Latency]:
    """The window's hours by model from the rollups, summed into `step` buckets (an hour or a day)."""
    report = store.spend_report  # type: ignore[attr-defined]
    rows = report(group_by=["model"], granularity="hour", start=start, end=end, latency=True, limit=1_000_000)
    buckets: list[Bucket] = []
    histograms: dict[int, list[int]] = defaultdict(lambda: [0] * BUCKETS)
    every = [0] * BUCKETS
    for row in rows:
        at = datetime.fromtimestamp(int(datetime.fromisoformat(row["period"]).timestamp()) // step * step, UTC)
        buckets.append(Bucket(at, row["model"] or "", int(row["requests"]), int(row["errors"]), row["spend"],
                              row["cost_saved"]))
        i = index.get(int(at.timestamp()))
        if i is not None:
            add_counts(histograms[i], row["latency_histogram"])
        add_counts(every, row["latency_histogram"])
    return buckets, ([histogram_percentile(histograms.get(i, ()), 0.50) for i in range(len(index))],
                     [histogram_percentile(histograms.get(i, ()), 0.99) for i in range(len(index))],
                     histogram_percentile(every, 0.5), histogram_percentile(every, 0.99))


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.2f} ms"


def _percentile(values: list[float] | None, q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
