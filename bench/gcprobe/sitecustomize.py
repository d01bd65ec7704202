"""Loaded by every server the bench starts with `--gc-stats` (through PYTHONPATH): records each garbage
collection (wall-clock start, generation, pause) and writes them to $BENCH_GC_DIR/<pid>.json at exit, so the
runner can attribute GC pauses to its measurement windows. Not part of rerank-proxy."""

import atexit
import gc
import json
import os
import signal
import sys
import time

_events: list[tuple[float, int, float]] = []
_started = [0.0, 0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0], _started[1] = time.time(), time.perf_counter()
    else:
        _events.append((_started[0], info["generation"], (time.perf_counter() - _started[1]) * 1000))


def _dump() -> None:
    directory = os.environ.get("BENCH_GC_DIR")
    if directory:
        with open(os.path.join(directory, f"{os.getpid()}.json"), "w") as file:
            json.dump(_events, file)


gc.callbacks.append(_on_gc)
atexit.register(_dump)
# uvicorn re-raises SIGTERM after its graceful shutdown; exit through atexit instead of dying on it.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
