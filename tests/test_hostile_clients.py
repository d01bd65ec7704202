"""Clients that hold connections or memory (issue 17, items 7 and 8): silent and trickling connections are cut
by the request-head and request-body deadlines, a flood of connections is refused at a cap below the
file-descriptor limit (raised to the hard limit at start), and large bodies in flight share a memory budget.

The connection guards live in the CLI's server protocol, so these tests run the CLI as a subprocess.
"""

from __future__ import annotations

import concurrent.futures
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.serving import MASTER_KEY, cli_process, config_for, running_proxy

BODY = {"model": "local-bm25", "query": "capital", "documents": ["Washington is the capital.", "Paris"]}
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
SILENT = 2_000
SOFT_FDS = 1_024


def _soft_fd_limit() -> None:
    """In the CLI's child: the common default soft limit, the hard limit left as it is."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_FDS, hard))


@contextmanager
def fds_for_this_test(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs a hard file-descriptor limit of at least {needed} (have {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def write_config(tmp_path: Path, **general: object) -> str:
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", general_settings=general)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_silent_and_trickling_connections_are_cut_and_never_stop_a_normal_client(tmp_path: Path) -> None:
    config = write_config(tmp_path, request_header_timeout=2, request_body_timeout=3)
    with fds_for_this_test(SILENT + 512), cli_process(["--config", config], cwd=tmp_path,
                                                       preexec_fn=_soft_fd_limit) as (proc, url):
        assert f"soft limit raised from {SOFT_FDS} to" in proc.output
        silent = [connect(url) for _ in range(SILENT)]
        try:
            served = httpx.post(url + "/v2/rerank", headers=AUTH, json=BODY, timeout=60)
            assert served.status_code == 200, served.text
            cut = answer_of(silent[0])  # the server closes it once the head deadline passes
            assert cut.startswith(b"HTTP/1.1 408") and b"request_header_timeout" in cut
        finally:
            for sock in silent:
                sock.close()

        with connect(url) as trickle:  # a declared body sent one byte at a time
            trickle.sendall(b"POST /v2/rerank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                            b"authorization: Bearer " + MASTER_KEY.encode() + b"\r\ncontent-length: 400\r\n\r\n")
            trickle.settimeout(0.5)
            answer, started = b"", time.monotonic()
            while not answer and time.monotonic() - started < 60:
                try:
                    trickle.send(b" ")
                    answer = trickle.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
            assert answer.startswith(b"HTTP/1.1 408") and b"request_body_timeout" in answer

        with connect(url) as stalled:  # an unauthenticated body that never comes: 401 at once, then closed
            stalled.sendall(b"POST /v2/rerank HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-wrong\r\n"
                            b"content-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
            answer = answer_of(stalled)
            assert answer.startswith(b"HTTP/1.1 401")


def test_connections_past_the_cap_are_refused_with_503_and_retry_after(tmp_path: Path) -> None:
    config = write_config(tmp_path, max_connections=20, request_header_timeout=120)
    with cli_process(["--config", config], cwd=tmp_path) as (_, url):
        held = [connect(url) for _ in range(30)]
        try:
            for sock in held:
                sock.settimeout(0.2)
            refused = []
            for sock in held:
                try:
                    refused.append(sock.recv(65536))
                except TimeoutError:
                    pass
            assert refused and all(r.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in r for r in refused)
            assert b"max_connections" in refused[0]
        finally:
            for sock in held:
                sock.close()
        assert httpx.post(url + "/v2/rerank", headers=AUTH, json=BODY, timeout=60).status_code in (200, 503)
        for _ in range(100):  # the closed connections leave; a client is served again
            if httpx.post(url + "/v2/rerank", headers=AUTH, json=BODY, timeout=60).status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server kept refusing after the held connections closed")


def test_large_bodies_in_flight_share_a_memory_budget(a, tmp_path: Path) -> None:
    """Two 40 KB requests are held upstream; a third would pass the 100 KB budget: 503 with Retry-After,
    before its body is read. Once they are answered the budget is free again."""
    config = config_for(a.url, f"sqlite:///{tmp_path / 'spend.db'}",
                        general_settings={"max_request_body_memory_mb": 0.1})
    large = {"model": "rerank-english-v3.0", "query": "capital", "documents": ["word " * 8_000]}
    a.hold()
    with running_proxy(config) as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        post = lambda: httpx.post(server.url + "/v2/rerank", headers=AUTH, json=large, timeout=60)  # noqa: E731
        first, second = pool.submit(post), pool.submit(post)
        deadline = time.monotonic() + 30
        while a.arrived < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a.arrived == 2
        refused = post()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "max_request_body_memory_mb" in refused.json()["message"]
        assert a.arrived == 2  # refused before any upstream call
        a.release()
        assert first.result().status_code == 200 and second.result().status_code == 200
        assert post().status_code == 200
