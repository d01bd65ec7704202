"""`settle_for_serving()`: process settings for a long-lived server, applied once its state is built.

Two costs that a request-serving process pays over and over and a one-off script never notices: garbage
collections that rescan the server's own long-lived objects, and memory that the C allocator hands back
to the kernel between requests and then faults in again, page by page, for the next large body.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

GC_YOUNG_THRESHOLD = 5_000
"""Net new container objects between young collections (CPython's default: 700). A request allocates a few
hundred that die with it; at 700 young collections ran every few requests (2.6% of a saturated worker's
time in bench --gc-stats). At 5,000 they take a tenth of that, each pause still about 2 ms; at 20,000 the
rare pauses reached 12 ms, which a p99 notices."""

MMAP_THRESHOLD = 8 << 20
"""Bytes from which glibc maps a block of its own (default 128 KiB, raised as blocks are freed). A
1,000-document body is ~400 KB; below this size a block comes from the heap, whose pages stay mapped."""
TRIM_THRESHOLD = 32 << 20
"""Free bytes at the top of the heap that glibc keeps rather than gives back (default twice the mmap
threshold). 32 connections of 1,000-document requests hold ~30 MB between them; giving it back after
each burst made every next request fault its pages in again: ~100 minor faults per request, a sixth of
its CPU at 1,000 documents (bench A/B). RSS stays at the high-water mark up to this much."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def settle_for_serving() -> None:
    """Freeze what is alive now out of the collector's way, collect young objects less often, keep freed
    memory mapped. Everything built before this call lives as long as the server, so full collections under
    load scan only per-request garbage (p99 latency; see bench/ --gc-stats)."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (`MMAP_THRESHOLD`, `TRIM_THRESHOLD`); True when applied.

    Not applied on other C libraries (musl, macOS) or when `MALLOC_MMAP_THRESHOLD_` or
    `MALLOC_TRIM_THRESHOLD_` is set: glibc has read those at start, and the operator's choice wins.
    """
    if platform.libc_ver()[0] != "glibc" or any(os.environ.get(name) for name in MALLOC_ENV):
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
