#!/usr/bin/env bash
# One command on a fresh machine: a venv with the bench extras, wrk when apt can install it, then the run.
#   bench/run.sh                 full run (all targets, 4/100/1000 documents)
#   bench/run.sh --quick         smoke run
# Every option of bench/run.py passes through (see bench/run.sh --help).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -e '.[bench]'
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } \
      || echo "run.sh: could not install wrk; using bench/loadgen.py" >&2
  else
    echo "run.sh: wrk not found (apt-get install wrk); using bench/loadgen.py" >&2
  fi
fi
exec "$VENV/bin/python" bench/run.py "$@"
