"""The cache bench runs end to end (a short replay) and reports what the cache saved; no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.redis_scratch import REDIS_ENV

ROOT = Path(__file__).resolve().parent.parent


def test_the_overlap_replay_reports_fewer_calls_documents_and_dollars_with_the_cache(tmp_path):
    out = tmp_path / "cache.json"
    command = [sys.executable, str(ROOT / "bench" / "cache_replay.py"), "--requests", "60", "--docs", "6",
               "--rounds", "5", "--lookup-docs", "50", "--json", str(out)]
    if os.environ.get(REDIS_ENV):
        command += ["--redis-url", os.environ[REDIS_ENV]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    for pricing in ("per search unit", "per token"):
        without, cached = report[pricing]["no_cache"], report[pricing]["cache"]
        assert without["upstream_calls"] == 60 and without["documents_sent"] == 360
        assert cached["upstream_calls"] < 60 and cached["documents_sent"] < 360
        assert cached["paid_usd"] < without["paid_usd"] and cached["saved_usd"] > 0
        assert cached["cache"]["hit"] and cached["cache"]["partial"]
    if os.environ.get(REDIS_ENV):
        assert report["redis_lookup"]["documents"] == 50
