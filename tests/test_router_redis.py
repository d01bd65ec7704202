"""Routing state shared through Redis: replicas enforce one rpm jointly, see each other's cooldowns and
in-flight calls; losing Redis degrades to in-process state without failing a request, and sharing resumes.

Tests against the CI Redis need TEST_REDIS_URL and use a key prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

import proxy
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.server import free_port
from tests.redis_scratch import REDIS_ENV, new_prefix, sync_redis
from tests.routing_support import cohere_deployment as deployment
from tests.serving import MASTER_KEY, cli_process, config_for, running_proxy, wait_until

ROOT = Path(__file__).resolve().parents[1]
BODY = {"query": CAPITAL_QUERY, "documents": CAPITALS}


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str, redis.Redis]]:
    """(url, key prefix unique to this test, a client) for the CI Redis; the prefix's keys are deleted after."""
    prefix = new_prefix().rstrip(":")
    with sync_redis(prefix + ":") as client:
        yield os.environ[REDIS_ENV], prefix, client


def call(url: str, **body) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", headers={"Authorization": f"Bearer {MASTER_KEY}"}, json={**BODY, **body},
                      timeout=30)


def published_in_flight(client: redis.Redis, prefix: str, deployment_id: str) -> int:
    """Calls in flight to a deployment as the replicas wrote them to Redis (replica → "count:timestamp")."""
    return sum(int(v.split(b":")[0]) for v in client.hvals(f"{prefix}:busy:{deployment_id}"))


def early_in_a_minute() -> None:
    """rpm windows are calendar minutes: start a count only when it cannot straddle two of them."""
    into = time.time() % 60
    if into > 56:
        time.sleep(60.2 - into)


def test_two_proxy_processes_enforce_one_rpm_jointly(shared_redis, a, tmp_path):
    url, prefix, _ = shared_redis
    configs = []
    for name in ("one", "two"):
        config = config_for(None, f"sqlite:///{tmp_path / name}.db",
                            model_list=[deployment("limited", "a", a.url, rpm=6)],
                            router_settings={"routing_strategy": "usage-based-routing", "redis_url": url,
                                             "redis_prefix": prefix})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        configs.append(path)
    with cli_process(["--config", str(configs[0])]) as (_, one), \
            cli_process(["--config", str(configs[1])]) as (_, two):
        early_in_a_minute()
        statuses = [call(one if i % 2 else two, model="limited").status_code for i in range(12)]
    assert sorted(statuses) == [200] * 6 + [429] * 6
    assert len(a.requests) == 6


def test_replicas_count_failures_together_and_see_each_others_cooldowns(shared_redis, a, b, tmp_path):
    url, prefix, client = shared_redis
    settings = {"redis_url": url, "redis_prefix": prefix, "allowed_fails": 2, "cooldown_time": 30,
                "redis_refresh_interval": 0}  # read Redis on every request, so the replicas agree at once
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=[
        deployment("pair", "a", a.url, order=1), deployment("pair", "b", b.url, order=2)], router_settings=settings)
    with running_proxy(config) as one, running_proxy(config) as two:
        a.fail_next("500", times=2)
        first = call(one.url, model="pair")
        second = call(two.url, model="pair")  # the second failure of `a`, counted with the first one's
        assert [first.headers["x-model-deployment"], second.headers["x-model-deployment"]] == ["b", "b"]
        wait_until(lambda: client.exists(f"{prefix}:cool:a"))
        for server in (one, two, one, two):
            assert call(server.url, model="pair").headers["x-model-deployment"] == "b"
    assert len(a.requests) == 2


async def test_routers_sharing_redis_see_each_others_calls_in_flight(shared_redis, a, b):
    url, prefix, client = shared_redis
    common = {"routing_strategy": "least-busy", "redis_url": url, "redis_prefix": prefix, "seed": 3}
    only_a = proxy.Router(model_list=[deployment("m", "a", a.url)], **common)
    both = proxy.Router(model_list=[deployment("m", "a", a.url), deployment("m", "b", b.url)], **common)
    try:
        a.hold()
        held = [asyncio.create_task(only_a.arerank("m", CAPITAL_QUERY, CAPITALS)) for _ in range(3)]
        while a.arrived < 3 or published_in_flight(client, prefix, "a") < 3:
            await asyncio.sleep(0.01)
        for _ in range(4):
            assert (await both.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "b"
        a.release()
        assert [r.deployment for r in await asyncio.gather(*held)] == ["a"] * 3
    finally:
        a.release()
        await only_a.aclose()
        await both.aclose()


async def test_max_parallel_requests_counts_other_replicas_calls_in_flight(shared_redis, a, b):
    url, prefix, client = shared_redis
    common = {"redis_url": url, "redis_prefix": prefix, "redis_refresh_interval": 0}
    one = proxy.Router(model_list=[deployment("m", "a", a.url, max_parallel_requests=2)], **common)
    two = proxy.Router(model_list=[deployment("m", "a", a.url, max_parallel_requests=2, order=1),
                                   deployment("m", "b", b.url, order=2)], **common)
    try:
        a.hold()
        held = [asyncio.create_task(one.arerank("m", CAPITAL_QUERY, CAPITALS)) for _ in range(2)]
        for _ in range(1000):
            if a.arrived == 2 and published_in_flight(client, prefix, "a") == 2:
                break
            await asyncio.sleep(0.01)
        assert (a.arrived, published_in_flight(client, prefix, "a")) == (2, 2)
        for _ in range(3):  # `a` is full with the other replica's two calls: `two` skips it
            assert (await asyncio.wait_for(two.arerank("m", CAPITAL_QUERY, CAPITALS), 10)).deployment == "b"
        with pytest.raises(proxy.AllDeploymentsFailedError) as caught:  # and so does `one`, by its own count
            await asyncio.wait_for(one.arerank("m", CAPITAL_QUERY, CAPITALS), 10)
        assert caught.value.status == 429 and a.arrived == 2
        a.release()
        assert [r.deployment for r in await asyncio.gather(*held)] == ["a"] * 2
        for _ in range(500):  # once `one` has published its calls' end, `two` may use `a` again
            if (await two.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "a":
                break
            await asyncio.sleep(0.01)
        assert a.arrived == 3
    finally:
        a.release()
        await one.aclose()
        await two.aclose()


def test_an_unreachable_redis_degrades_to_in_process_state_with_one_warning(a, tmp_path, caplog):
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}",
                        model_list=[deployment("limited", "a", a.url, rpm=15)],
                        router_settings={"routing_strategy": "usage-based-routing", "redis_url": nowhere})
    with caplog.at_level(logging.WARNING, logger="proxy.redis"), running_proxy(config) as server:
        early_in_a_minute()
        statuses = [call(server.url, model="limited").status_code for _ in range(16)]
    assert statuses == [200] * 15 + [429]  # the rpm is still enforced, by this process alone
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and f"Redis at {nowhere}" in warnings[0]


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, callable, callable]]:
    """A redis-server of this test's own on a free port: (url, stop(), start())."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs the redis-server binary to stop and restart a Redis")
    port = free_port()
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                       "--dir", str(tmp_path)], stdout=subprocess.DEVNULL))
        probe = redis.Redis(port=port)
        wait_until(lambda: _answers(probe))
        probe.close()

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", stop, start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


async def test_losing_redis_mid_traffic_fails_no_request_and_sharing_resumes(own_redis, a, caplog):
    url, stop, start = own_redis
    router = proxy.Router(model_list=[deployment("m", "a", a.url, rpm=10_000)],
                          routing_strategy="usage-based-routing", redis_url=url, redis_prefix="p")
    client = redis.Redis.from_url(url)
    try:
        with caplog.at_level(logging.WARNING, logger="proxy.redis"):
            for _ in range(5):
                await router.arerank("m", CAPITAL_QUERY, CAPITALS)
            assert any(key.startswith(b"p:rpm:a:") for key in client.keys("*"))
            stop()
            for _ in range(20):
                assert (await router.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "a"
            start()
            for _ in range(500):  # until the router has noticed Redis is back and writes to it again
                await router.arerank("m", CAPITAL_QUERY, CAPITALS)
                if client.keys("p:rpm:a:*"):
                    break
                await asyncio.sleep(0.02)
        assert client.keys("p:rpm:a:*")
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 2 and "unreachable" in warnings[0] and "answers again" in warnings[1]
    finally:
        client.close()
        await router.aclose()


def test_redis_url_without_the_redis_package_names_the_extra():
    script = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "import proxy\n"
        "try:\n"
        "    proxy.Router(model_list=[{'model_name': 'm', 'litellm_params': {'model': 'local/bm25'}}],\n"
        "                 redis_url='redis://127.0.0.1:1/0')\n"
        "except proxy.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("router_settings.redis_url needs the optional package 'redis': "
                                   "pip install 'rerank-proxy[redis]'")


def test_one_sdk_router_with_redis_serves_sync_and_async_calls_on_several_event_loops(shared_redis, a):
    url, prefix, client = shared_redis
    router = proxy.Router(model_list=[deployment("m", "a", a.url, rpm=1000)],
                          routing_strategy="usage-based-routing", redis_url=url, redis_prefix=prefix)
    early_in_a_minute()
    assert router.rerank("m", CAPITAL_QUERY, CAPITALS).deployment == "a"

    async def twice() -> None:
        try:
            for _ in range(2):
                await router.arerank("m", CAPITAL_QUERY, CAPITALS)
        finally:
            await router.aclose()

    asyncio.run(twice())
    asyncio.run(twice())
    assert router.rerank("m", CAPITAL_QUERY, CAPITALS).deployment == "a"
    router.close()
    counted = [int(client.get(key)) for key in client.scan_iter(f"{prefix}:rpm:a:*")]
    assert counted == [6] and len(a.requests) == 6


async def test_with_the_default_refresh_a_replica_soon_sees_anothers_cooldown(shared_redis, a, b):
    url, prefix, _ = shared_redis
    model_list = [deployment("m", "a", a.url, order=1), deployment("m", "b", b.url, order=2)]
    common = {"redis_url": url, "redis_prefix": prefix,
              "cooldown_time": 30}
    one, two = proxy.Router(model_list=model_list, **common), proxy.Router(model_list=model_list, **common)
    try:
        assert (await two.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "a"
        a.fail_next("429")
        assert (await one.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "b"
        for _ in range(500):  # `two` refreshes from Redis in the background, at most every 0.1 s
            if two.deployment_states()["a"] == "cooldown":
                break
            await two.arerank("m", CAPITAL_QUERY, CAPITALS)
            await asyncio.sleep(0.01)
        assert two.deployment_states() == {"a": "cooldown", "b": "healthy"}
        seen_by_a = len(a.requests)
        for _ in range(3):
            assert (await two.arerank("m", CAPITAL_QUERY, CAPITALS)).deployment == "b"
        assert len(a.requests) == seen_by_a
    finally:
        await one.aclose()
        await two.aclose()
