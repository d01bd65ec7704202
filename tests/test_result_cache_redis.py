"""The result cache in real Redis: shared by replicas, TTLs, corrupt entries, and Redis dying mid-traffic."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.server import free_port
from tests.redis_scratch import REDIS_ENV, needs_redis, new_prefix, sync_redis
from tests.serving import admin, config_for, running_proxy, wait_until
from tests.test_result_cache import AUTH, DOCS, QUERY, rerank, sent_documents

pytestmark = pytest.mark.redis


def redis_config(cohere_url: str, db_url: str, prefix: str, url: str, **params: Any) -> dict[str, Any]:
    config = config_for(cohere_url, db_url, litellm_settings={
        "cache": True, "cache_params": {"type": "redis", "url": url, "timeout": 2.0, **params}})
    config["general_settings"]["redis_key_prefix"] = prefix
    config["router_settings"] = {"num_retries": 0}
    return config


@pytest.fixture
def prefix() -> Iterator[str]:
    name = new_prefix()
    with sync_redis(name):
        yield name


def stored(prefix: str, kind: str) -> list[bytes]:
    with sync_redis(prefix + "x") as client:
        return list(client.scan_iter(match=f"{prefix}cache:{kind}:*"))


@needs_redis
def test_two_replicas_share_answers_and_scores(cohere_upstream, sqlite_db_url, prefix):
    config = redis_config(cohere_upstream.url, sqlite_db_url, prefix, os.environ[REDIS_ENV])
    with running_proxy(config) as one, running_proxy(config) as two:
        assert rerank(one.url, DOCS[:6]).headers["x-cache"] == "miss"
        wait_until(lambda: len(stored(prefix, "s")) == 6 and stored(prefix, "a"))
        assert rerank(two.url, DOCS[:6]).headers["x-cache"] == "hit"
        partial = rerank(two.url, DOCS[3:9])
        assert partial.headers["x-cache"] == "partial"
    assert sent_documents(cohere_upstream) == [DOCS[:6], DOCS[6:9]]


@needs_redis
def test_entries_expire_after_the_configured_or_requested_ttl(cohere_upstream, sqlite_db_url, prefix):
    config = redis_config(cohere_upstream.url, sqlite_db_url, prefix, os.environ[REDIS_ENV], ttl=600)
    with running_proxy(config) as server, sync_redis(prefix + "x") as client:
        rerank(server.url, DOCS[:2])
        rerank(server.url, DOCS[4:6], cache={"ttl": 5})
        wait_until(lambda: len(stored(prefix, "a")) == 2 and len(stored(prefix, "s")) == 4)
        ttls = sorted(client.pttl(key) for key in stored(prefix, "a"))
    assert 0 < ttls[0] <= 5_000 and 5_000 < ttls[1] <= 600_000


@needs_redis
def test_a_corrupt_entry_is_a_miss(cohere_upstream, sqlite_db_url, prefix):
    config = redis_config(cohere_upstream.url, sqlite_db_url, prefix, os.environ[REDIS_ENV])
    with running_proxy(config) as server, sync_redis(prefix + "x") as client:
        first = rerank(server.url, DOCS[:3])
        wait_until(lambda: len(stored(prefix, "s")) == 3 and stored(prefix, "a"))
        for key in stored(prefix, "a") + stored(prefix, "s"):
            client.set(key, b"\x00garbage")
        again = rerank(server.url, DOCS[:3])
    assert again.status_code == 200 and again.headers["x-cache"] == "miss"
    assert again.json()["results"] == first.json()["results"]
    assert len(cohere_upstream.requests) == 2


class RedisProcess:
    """A redis-server of our own on a free port, to kill mid-traffic."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(probe))
        probe.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server on PATH")
def test_redis_killed_mid_traffic_fails_no_request(cohere_upstream, sqlite_db_url, caplog):
    own = RedisProcess()
    statuses: list[int] = []
    caches: list[str] = []
    try:
        config = redis_config(cohere_upstream.url, sqlite_db_url, new_prefix(), own.url, timeout=0.2)
        with running_proxy(config) as server:
            stop = threading.Event()

            def traffic() -> None:
                i = 0
                with httpx.Client(timeout=30) as client:
                    while not stop.is_set():
                        i += 1
                        body = {"model": "rerank-english-v3.0", "query": QUERY,
                                "documents": DOCS[i % 6: i % 6 + 4]}
                        response = client.post(f"{server.url}/v2/rerank", json=body, headers=AUTH)
                        statuses.append(response.status_code)
                        caches.append(response.headers.get("x-cache", ""))

            with caplog.at_level(logging.WARNING):
                workers = [threading.Thread(target=traffic) for _ in range(4)]
                for worker in workers:
                    worker.start()
                wait_until(lambda: caches.count("hit") >= 5)
                own.kill()
                served = len(statuses)
                wait_until(lambda: len(statuses) >= served + 40)
                stop.set()
                for worker in workers:
                    worker.join(timeout=30)
            with admin(server.url) as client:
                metrics = client.get("/metrics").text
    finally:
        if own.process.poll() is None:
            own.kill()
    assert statuses and set(statuses) == {200}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()]
    assert len(warnings) == 1 and "result cache" in warnings[0].getMessage()
    assert "rerank_proxy_cache_unavailable_total" in metrics
