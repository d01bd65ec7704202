"""The one Redis link of a process: its outage policy (with an injected clock), one client per event loop,
and in a real server routing, limits and the result cache on one link, surviving a Redis restart together."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

import proxy
from proxy.app import create_app
from proxy.redis_link import RedisLink, connection_url
from proxy.settings import parse_config
from tests.fakes.server import LiveServer, free_port
from tests.redis_scratch import REDIS_ENV, needs_redis, new_prefix, sync_redis
from tests.routing_support import cohere_deployment
from tests.serving import admin, config_for, wait_until
from tests.test_limits import new_key
from tests.test_router_redis import own_redis as own_redis  # a fixture: a redis-server to stop and start

ROLES = {"routing": "routing state stays in this process", "limits": "rate limits and budgets are counted per process"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def link_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "proxy.redis" and r.levelno == logging.WARNING]


async def test_down_for_the_stated_time_then_one_trial_call_brings_it_back(caplog):
    clock, resumed = Clock(), []
    link = RedisLink(f"redis://:secret@127.0.0.1:{free_port()}/0", clock=clock, retry_seconds=2.0)
    link.serve("routing", ROLES["routing"], on_back=lambda: resumed.append(clock.now))
    link.serve("limits", ROLES["limits"])
    client = link.client()
    with caplog.at_level(logging.WARNING, logger="proxy.redis"):
        with pytest.raises(link.errors) as refused:  # nothing listens on that port
            await client.ping()
        link.failed(refused.value)
        link.failed(refused.value)  # a second call failing in the same outage: no second warning
        assert link.down and link.client() is None
        link.ok()  # a call sent before the outage that answers late does not bring it back
        assert link.down
        clock.now += 1.9
        assert link.client() is None
        clock.now += 0.1
        assert link.client() is client  # one trial call...
        assert link.client() is None  # ...at a time
        link.failed(refused.value)  # the trial failed: down for another period, quietly
        clock.now += 1.0
        assert link.client() is None
        clock.now += 1.0
        assert link.client() is client
        link.ok()
        assert not link.down and link.client() is client and resumed == [104.0]
    warnings = link_warnings(caplog)
    assert len(warnings) == 2
    assert warnings[0].startswith(f"Redis at redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0 "
                                  "is unreachable (ConnectionError)")
    assert ROLES["routing"] in warnings[0] and ROLES["limits"] in warnings[0] and "every 2s" in warnings[0]
    assert "answers again; shared again: routing, limits" in warnings[1]
    assert "secret" not in " ".join(warnings)
    await link.aclose()


def test_one_client_per_event_loop_and_a_password_is_quoted():
    link = RedisLink("redis://127.0.0.1:1/0")

    async def clients() -> tuple[Any, Any]:
        return link.client(), link.client()

    first, again = asyncio.run(clients())
    other, _ = asyncio.run(clients())
    assert first is again and other is not first  # the SDK's loops each get a client (and pool) of their own
    assert connection_url(host="h", password="p@ss/w:rd") == "redis://:p%40ss%2Fw%3Ard@h:6379"
    assert redis.Redis.from_url(connection_url(host="h", password="p@ss/w:rd")).connection_pool.connection_kwargs[
        "password"] == "p@ss/w:rd"


# --- one server: routing, limits and the result cache on one link -------------------------------------------


def config(upstream_url: str, db_url: str, redis_url: str, prefix: str) -> dict[str, Any]:
    """Routing reserves against an rpm in Redis, keys have an rpm_limit, and answers are cached in Redis."""
    return config_for(None, db_url, model_list=[cohere_deployment("m", "d1", upstream_url, rpm=100_000)],
                      general_settings={"redis_key_prefix": prefix},
                      router_settings={"redis_url": redis_url, "routing_strategy": "usage-based-routing",
                                       "num_retries": 0},
                      litellm_settings={"cache": True, "cache_params": {"type": "redis", "timeout": 2.0}})


def rerank(url: str, key: str, i: int) -> httpx.Response:
    """A call no earlier one answered (a cache miss: it is routed, limited and stored)."""
    return httpx.post(f"{url}/v2/rerank", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "m", "query": f"question {i}", "documents": [f"doc {i}", "other"]})


def keys_of(client: redis.Redis, prefix: str) -> dict[str, int]:
    """How many keys routing, limits and the cache hold under `prefix`."""
    found = [k.decode() for k in client.scan_iter(match=prefix + "*")]
    return {"routing": sum(k.startswith(prefix + "rpm:d1:") for k in found),
            "limits": sum(k.startswith(prefix + "rpm:key:") for k in found),
            "cache": sum(k.startswith(prefix + "cache:") for k in found)}


@contextmanager
def serving(config: dict[str, Any]) -> Iterator[tuple[LiveServer, Any]]:
    """A server in this process, and its runtime (to see which link each part holds)."""
    app = create_app(parse_config(config, {}))
    with LiveServer(app, lifespan="on") as server:
        yield server, app.state.runtime


@needs_redis
def test_routing_limits_and_the_cache_of_one_server_share_one_link_and_its_pool(cohere_upstream, tmp_path):
    prefix = new_prefix()
    url = os.environ[REDIS_ENV]
    with sync_redis(prefix) as client, serving(config(cohere_upstream.url, f"sqlite:///{tmp_path / 's.db'}",
                                                      url, prefix)) as (server, runtime):
        with admin(server.url) as admin_client:
            key = new_key(admin_client, rpm_limit=1000)
        assert all(rerank(server.url, key, i).status_code == 200 for i in range(5))
        wait_until(lambda: all(keys_of(client, prefix).values()))
        link = runtime.governance.link
        assert isinstance(link, RedisLink)
        assert runtime.router.state.link is link and runtime.engine.cache.store.link is link
        ours = [c for c in client.client_list() if c["name"].startswith(f"rerank-proxy-{os.getpid()}-")]
        assert ours and {c["name"] for c in ours} == {link.name}  # every connection of this process is the link's


def test_a_redis_restart_is_survived_by_routing_limits_and_cache_with_one_warning_each_way(
        own_redis, cohere_upstream, tmp_path, caplog):
    url, stop, start = own_redis
    prefix = "p:"
    probe = redis.Redis.from_url(url)
    with caplog.at_level(logging.WARNING, logger="proxy.redis"), \
            serving(config(cohere_upstream.url, f"sqlite:///{tmp_path / 's.db'}", url, prefix)) as (server, _):
        with admin(server.url) as admin_client:
            key = new_key(admin_client, rpm_limit=1000)
        assert all(rerank(server.url, key, i).status_code == 200 for i in range(3))
        wait_until(lambda: all(keys_of(probe, prefix).values()))
        stop()
        assert [rerank(server.url, key, i).status_code for i in range(3, 13)] == [200] * 10
        start()  # empty: the keys come back only if all three use Redis again
        i = 13
        while not all(keys_of(probe, prefix).values()):
            assert rerank(server.url, key, i).status_code == 200, "a request failed while Redis came back"
            i += 1
            assert i < 400, f"not every part is back on Redis: {keys_of(probe, prefix)}"
            time.sleep(0.02)
    probe.close()
    warnings = link_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "is unreachable" in warnings[0]
    assert all(role in warnings[0] for role in (*ROLES.values(), "the result cache is bypassed"))
    assert "answers again; shared again: routing, limits, result cache" in warnings[1]


@needs_redis
def test_an_sdk_redis_cache_serves_blocking_calls_and_several_event_loops():
    namespace = new_prefix().rstrip(":")
    cache = proxy.Cache(type="redis", url=os.environ[REDIS_ENV], namespace=namespace, timeout=2.0)
    router = proxy.Router(model_list=[{"model_name": "m", "litellm_params": {"model": "local/bm25"}}])
    documents = ["the capital of France is Paris", "bread"]

    async def once() -> str:
        answer = await router.arerank("m", "capital of France", documents, cache=cache)
        await cache.store.settle()  # the write is in the background: let it land before this loop ends
        return answer.cache  # no aclose: an SDK user's loop ends with its connections open

    with sync_redis(f"rerank-proxy:cache:{namespace}:"):
        assert [asyncio.run(once()), asyncio.run(once())] == ["miss", "hit"]  # a client per loop
        assert router.rerank("m", "capital of France", documents, cache=cache).cache == "hit"  # the SDK's loop
        assert cache.store.unavailable == 0
        router.close()
