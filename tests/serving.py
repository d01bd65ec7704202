"""Start a real rerank-proxy server (in-process thread or CLI subprocess) for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from proxy.app import create_app
from proxy.settings import parse_config
from tests.fakes.server import LiveServer, free_port

MASTER_KEY = "sk-master-test"


def config_for(fake_cohere_url: str | None, db_url: str, **extra: Any) -> dict[str, Any]:
    model_list = [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}]
    if fake_cohere_url:
        model_list.append({
            "model_name": "rerank-english-v3.0",
            "litellm_params": {"model": "cohere/rerank-english-v3.0", "api_key": "os.environ/TEST_COHERE_KEY",
                               "api_base": fake_cohere_url},
            "model_info": {"id": "cohere-main"},
        })
    config: dict[str, Any] = {
        "model_list": model_list,
        "general_settings": {"master_key": MASTER_KEY, "database_url": db_url, "spend_flush_interval": 0.05},
    }
    for section, values in extra.items():
        if section == "model_list":
            config["model_list"] = config["model_list"] + values
        else:
            config.setdefault(section, {}).update(values)
    return config


@contextmanager
def running_proxy(config: dict[str, Any], environ: dict[str, str] | None = None,
                  clock: Callable[[], datetime] | None = None) -> Iterator[LiveServer]:
    """`clock`: the wall-clock time the server's limits and budgets see (default: the real time)."""
    settings = parse_config(config, {"TEST_COHERE_KEY": "test-key", **(environ or {})})
    with LiveServer(create_app(settings, clock=clock), lifespan="on") as server:
        yield server


def admin(server_url: str) -> httpx.Client:
    return httpx.Client(base_url=server_url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def answered(response: httpx.Response) -> Any:
    """The JSON of a 200 answer (else the test fails showing the body)."""
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class DrainedProcess(subprocess.Popen):
    """A Popen whose merged output is read as it comes: a full pipe would block the server's request log."""

    def start_draining(self) -> None:
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.stdout is not None
        for line in self.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def communicate(self, input=None, timeout=None):  # noqa: A002 - Popen's signature
        self.wait(timeout)
        self._reader.join(timeout=10)
        return self.output, None


@contextmanager
def cli_process(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                preexec_fn: Callable[[], None] | None = None) -> Iterator[tuple[DrainedProcess, str]]:
    port = free_port()
    proc = DrainedProcess(
        [sys.executable, "-m", "proxy", "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=preexec_fn,
    )
    proc.start_draining()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            proc.communicate(timeout=10)
            raise AssertionError(f"proxy exited early:\n{proc.output}")
        try:
            return httpx.get(url + "/health/liveliness", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=90, interval=0.1)  # several workers on a busy 2-core machine start slowly
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def background_load(url: str, body: dict[str, Any], *, threads: int = 8) -> Iterator[list[str]]:
    """POST `body` to /v2/rerank from several threads until the block ends or the server goes away.

    Yields the list of request ids of the 200 answers, filled in as they arrive.
    """
    successes: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v2/rerank", json=body)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    successes.append(response.headers["x-request-id"])

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield successes
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
