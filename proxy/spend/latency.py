"""Latency histograms in the spend rollups: fixed log-spaced buckets, one integer column each, so rollup rows
add up with SQL `+` and `SUM` and the p50/p99 of any hour, day or grouping come from the sums.

Bucket 0 counts requests under 1 ms; bucket i (1–48) [2^((i-1)/3), 2^(i/3)) ms, three per doubling (each
26% wider than the one before); bucket 49 from 2^16 ms (65.5 s) on. A percentile read from the counts
lies in the bucket that holds the exact one, so it is off by at most that bucket's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PER_DOUBLING = 3
DOUBLINGS = 16
BUCKETS = PER_DOUBLING * DOUBLINGS + 2
COLUMNS = tuple(f"lat{i:02d}" for i in range(BUCKETS))
"""The rollup columns, bucket 0 first."""
_TOP = float(2**DOUBLINGS)


def bucket_of(ms: float) -> int:
    if not ms >= 1.0:  # NaN too
        return 0
    if ms >= _TOP:
        return BUCKETS - 1
    return int(math.log2(ms) * PER_DOUBLING) + 1


def bounds(bucket: int) -> tuple[float, float]:
    """[low, high) in ms of a bucket (the last one's high is infinity)."""
    if bucket == 0:
        return 0.0, 1.0
    if bucket == BUCKETS - 1:
        return _TOP, math.inf
    return 2 ** ((bucket - 1) / PER_DOUBLING), 2 ** (bucket / PER_DOUBLING)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0–1) of the latencies counted: the value at index int(q × n) of them sorted, placed
    inside its bucket by its rank there (geometrically: the buckets are log-spaced). None for no requests;
    the open last bucket answers its low bound."""
    total = sum(counts)
    if total == 0:
        return None
    target = min(total - 1, int(q * total))
    seen = 0
    for bucket, count in enumerate(counts):
        if seen + count > target:
            low, high = bounds(bucket)
            share = (target - seen + 0.5) / count
            if bucket == 0:
                return high * share
            if bucket == BUCKETS - 1:
                return low
            return float(low * (high / low) ** share)
        seen += count
    raise AssertionError("unreachable: the target is below the total")


def add(into: list[int], counts: Sequence[int]) -> None:
    for i, count in enumerate(counts):
        into[i] += count
