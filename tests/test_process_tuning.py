"""Process settings for serving: GC thresholds and frozen startup objects, and glibc keeping freed memory.

Each case runs in a fresh interpreter: these settings are process-wide.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from proxy.process_tuning import GC_YOUNG_THRESHOLD, MALLOC_ENV

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")

# Waves of 32 bodies of 400 KB alive at once, then all freed: what 32 connections of 1,000-document
# requests do to the allocator. Prints the minor page faults of the waves after the first.
WAVES = """
import resource, sys
from proxy.process_tuning import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else None
def wave(size):
    held = [b"x" * size for _ in range(32)]
    del held
wave(400_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(30):
    wave(400_000 + 4096 * (i % 3))
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(code: str, *args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                         env={**clean, **env}, check=True)
    return out.stdout.strip()


def test_settling_freezes_what_lives_now_and_collects_young_objects_less_often() -> None:
    out = run("import gc\nfrom proxy.process_tuning import settle_for_serving\nkept = [[] for _ in range(1000)]\n"
              "settle_for_serving()\nprint(gc.get_freeze_count() >= 1000, gc.get_threshold()[0])")
    assert out == f"True {GC_YOUNG_THRESHOLD}"


@glibc_only
def test_freed_bodies_stay_mapped_instead_of_faulting_in_again() -> None:
    applied, tuned = run(WAVES, "tuned").split()
    _, default = run(WAVES, "default").split()
    assert applied == "True"
    assert int(default) > 30 * 32 * 50  # glibc's defaults: most of each wave's pages fault in again
    assert int(tuned) < int(default) / 20


@glibc_only
def test_an_operators_malloc_setting_wins() -> None:
    applied, _ = run(WAVES, "tuned", MALLOC_TRIM_THRESHOLD_="131072").split()
    assert applied == "False"
