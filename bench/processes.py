"""Processes the bench starts and watches: ports, /proc sampling (CPU, RSS), CPU pinning, HTTP probes."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


ROOT = HERE.parent


PY = sys.executable


CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def rss_mb(pids: list[int], which: str = "VmRSS") -> dict[str, float]:
    """Total over the processes and the largest single one (a uvicorn supervisor holds little)."""
    sizes = [memory_kb(pid).get(which, 0) / 1024 for pid in pids]
    return {"total": round(sum(sizes), 1), "max_process": round(max(sizes, default=0), 1)}


def pin(pids: list[int], cpus: str | None) -> None:
    if not cpus or not shutil.which("taskset"):
        return
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def parse_cpus(spec: str) -> list[int]:
    cpus: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


@dataclass
class Server:
    """One process the bench started (with its workers); `url_for(n)` is where n-document requests go."""

    name: str
    kind: str
    argv: list[str]
    health: str
    url_for: Callable[[int], str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    token: str | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    rss_idle: dict[str, float] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)
    features: dict[str, Any] = field(default_factory=dict)
    database_url: str | None = None

    def start(self, logs: Path, cpus: str | None) -> None:
        self.log_path = logs / f"{self.name}.log"
        log = self.log_path.open("wb")
        prefix = ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []
        self.proc = subprocess.Popen(prefix + self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                                     env={**os.environ, **self.env}, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; its log:\n{self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                if http("GET", self.health, timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not become ready in {timeout}s")

    def pids(self) -> list[int]:
        found = descendants(self.proc.pid) if self.proc and self.proc.poll() is None else []
        self.seen_pids.update(found)
        return found

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version()}


def git_revision(root: Path = ROOT) -> str | None:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or None
