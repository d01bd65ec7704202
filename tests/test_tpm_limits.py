"""`tpm_limit` on keys and end-users: tokens used this minute (reported by the provider, else our estimate),
counted per process, and shared by replicas through Redis."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proxy.limits import Limit, LocalCounters, refusal
from proxy.pricing import estimate_tokens
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.server import LiveServer
from tests.redis_scratch import REDIS_ENV, async_redis, needs_redis, new_prefix, sync_redis
from tests.serving import MASTER_KEY, admin, config_for, running_proxy, wait_until

NOW = datetime(2025, 1, 1, 12, 0, 13, 500_000, tzinfo=UTC)  # 46.5 s before the next minute
REPORTED_TOKENS = 400
ESTIMATED_TOKENS = estimate_tokens(make_request(CAPITAL_QUERY, CAPITALS))


def _tpm(limit: int, counter: str = "key:k") -> Limit:
    return Limit("tpm", counter, limit, "key 'k'", "tpm_limit")


def at_now() -> datetime:
    """The servers' clock: every call of these tests falls in NOW's minute, 46.5 s before the next."""
    return NOW


# --- the pieces ------------------------------------------------------------------------------------


def test_local_tpm_counts_tokens_of_finished_calls_in_the_current_minute():
    counters = LocalCounters()
    limit = _tpm(1000)
    assert counters.admit([limit], Decimal(0), NOW) is None
    counters.add_tokens(("key:k",), 600, NOW)
    assert counters.admit([limit], Decimal(0), NOW) is None  # 600 < 1000: admitted, calls in flight finish
    counters.add_tokens(("key:k",), 600, NOW)
    refused = counters.admit([limit], Decimal(0), NOW)
    assert refused.limit is limit and refused.used == 1200 and refused.retry_after == 47
    next_minute = NOW + timedelta(seconds=47)
    assert counters.admit([limit], Decimal(0), next_minute) is None
    assert counters.tokens_used("key:k", next_minute) == 0


def test_tpm_refusal_names_the_limit_and_waits_for_the_next_minute():
    error = refusal(_tpm(1000), now=NOW, retry_after=47, used=Decimal(1200))
    assert error.status == 429 and error.retry_after == 47
    assert error.message == ("Token rate limit exceeded for key 'k': tpm_limit is 1000 tokens per minute "
                             "(1200 used this minute); retry in 47s.")
    last = refusal(_tpm(10), now=NOW.replace(second=59, microsecond=999_000))
    assert last.retry_after == 1


@needs_redis
def test_redis_tpm_counts_released_tokens_per_minute():
    from proxy.limits import RedisCounters, Refused

    prefix = new_prefix()

    async def scenario() -> None:
        async with async_redis(prefix) as client:
            counters = RedisCounters(prefix)
            limit = _tpm(1000)
            first = await counters.admit(client, [limit], Decimal(0), "m1", NOW)
            assert not isinstance(first, Refused) and first.tpm == ("key:k",)
            await counters.release(client, first, "m1", Decimal(0), Decimal(0), 600, NOW)
            second = await counters.admit(client, [limit], Decimal(0), "m2", NOW)
            assert not isinstance(second, Refused)
            await counters.release(client, second, "m2", Decimal(0), Decimal(0), 600, NOW)
            assert await counters.tokens_used(client, "key:k", NOW) == 1200
            refused = await counters.admit(client, [limit], Decimal(0), "m3", NOW)
            assert isinstance(refused, Refused) and refused.used == 1200 and refused.retry_after == 47
            assert 0 < await client.pttl(counters.tpm_key("key:k", NOW)) <= 120_000  # the count expires
            later = NOW + timedelta(seconds=47)
            assert not isinstance(await counters.admit(client, [limit], Decimal(0), "m4", later), Refused)

    asyncio.run(scenario())


# --- through the proxy -----------------------------------------------------------------------------


async def _metered(request: Request) -> JSONResponse:
    """Cohere-shaped upstream that reports REPORTED_TOKENS for every call."""
    body = await request.json()
    return JSONResponse({"id": "m", "results": [{"index": i, "relevance_score": 1 / (i + 1)}
                                                for i in range(len(body["documents"]))],
                         "meta": {"billed_units": {"search_units": 1, "total_tokens": REPORTED_TOKENS}}})


@pytest.fixture(scope="module")
def metered():
    with LiveServer(Starlette(routes=[Route("/v2/rerank", _metered, methods=["POST"])])) as server:
        yield server.url


def _config(fake_cohere_url: str, metered_url: str, db_url: str, **extra) -> dict:
    config = config_for(fake_cohere_url, db_url, **extra)
    config["model_list"].append({"model_name": "metered", "litellm_params": {
        "model": "cohere/rerank-v3.5", "api_key": "os.environ/TEST_COHERE_KEY", "api_base": metered_url}})
    return config


@pytest.fixture(scope="module")
def proxy_url(fake_cohere, metered, tmp_path_factory):
    db = tmp_path_factory.mktemp("tpm-db") / "spend.db"
    with running_proxy(_config(fake_cohere.url, metered, f"sqlite:///{db}"), clock=at_now) as server:
        yield server.url


def call(url: str, key: str = MASTER_KEY, model: str = "metered", **extra) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "query": CAPITAL_QUERY, "documents": CAPITALS, **extra})


def new_key(url: str, **fields) -> str:
    with admin(url) as client:
        response = client.post("/key/generate", json=fields)
    assert response.status_code == 200, response.text
    assert response.json()["tpm_limit"] == fields.get("tpm_limit")
    return response.json()["key"]


def test_key_tpm_limit_counts_reported_tokens_and_refuses_until_the_next_minute(proxy_url):
    key = new_key(proxy_url, key_alias="tpm-1000", tpm_limit=1000)
    assert [call(proxy_url, key).status_code for _ in range(3)] == [200] * 3  # 0, 400, 800 used before each
    refused = call(proxy_url, key)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "47"  # NOW is 46.5 s before the next minute
    assert refused.json()["message"] == ("Token rate limit exceeded for key 'tpm-1000': tpm_limit is 1000 tokens "
                                         "per minute (1200 used this minute); retry in 47s.")
    assert call(proxy_url, MASTER_KEY).status_code == 200  # other callers are not limited


def test_tpm_limit_counts_our_estimate_when_the_provider_reports_no_tokens(proxy_url):
    key = new_key(proxy_url, tpm_limit=ESTIMATED_TOKENS + 1)
    statuses = [call(proxy_url, key, model="rerank-english-v3.0").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_calls_the_provider_refused_use_no_tokens(proxy_url, cohere_upstream):
    key = new_key(proxy_url, tpm_limit=1)
    cohere_upstream.fail_next("400")
    rejected = call(proxy_url, key, model="rerank-english-v3.0")
    assert rejected.status_code == 400 and cohere_upstream.requests  # it reached the provider
    assert call(proxy_url, key).status_code == 200
    assert call(proxy_url, key).status_code == 429


def test_end_user_tpm_limit_is_stored_and_enforced(proxy_url):
    with admin(proxy_url) as client:
        created = client.post("/customer/new", json={"user_id": "tpm-tess", "tpm_limit": REPORTED_TOKENS})
        assert created.status_code == 200 and created.json()["tpm_limit"] == REPORTED_TOKENS
        assert client.get("/customer/info", params={"end_user_id": "tpm-tess"}).json()["tpm_limit"] == 400
    assert [call(proxy_url, user="tpm-tess").status_code for _ in range(2)] == [200, 429]
    refused = call(proxy_url, user="tpm-tess")
    assert "end-user 'tpm-tess': tpm_limit is 400 tokens per minute" in refused.json()["message"]
    assert call(proxy_url, user="tpm-uma").status_code == 200
    with admin(proxy_url) as client:  # raising the limit applies at once
        assert client.post("/customer/update", json={"user_id": "tpm-tess", "tpm_limit": 10_000}).status_code == 200
    assert call(proxy_url, user="tpm-tess").status_code == 200


def test_admin_tpm_limit_is_validated(proxy_url):
    with admin(proxy_url) as client:
        assert client.post("/key/generate", json={"tpm_limit": -1}).status_code == 422
        assert client.post("/customer/new", json={"user_id": "neg-tpm", "tpm_limit": -5}).status_code == 422


# --- two replicas sharing Redis --------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(fake_cohere, metered, tmp_path_factory):
    prefix = new_prefix()
    with sync_redis(prefix) as client:
        db = tmp_path_factory.mktemp("tpm-replicas-db") / "spend.db"
        config = _config(fake_cohere.url, metered, f"sqlite:///{db}", general_settings={"redis_key_prefix": prefix},
                         router_settings={"redis_url": os.environ[REDIS_ENV]})
        with running_proxy(config, clock=at_now) as first, running_proxy(config, clock=at_now) as second:
            yield [first.url, second.url], client, prefix


@pytest.mark.redis
def test_two_replicas_share_the_tpm_limit(replicas):
    (first, second), client, prefix = replicas
    key = new_key(first, tpm_limit=1000)
    assert [call(first, key).status_code for _ in range(3)] == [200] * 3

    def counted() -> int:  # tokens are counted off the request path, just after each answer
        return sum(int(client.get(k) or 0) for k in client.scan_iter(match=f"{prefix}tpm:*"))

    wait_until(lambda: counted() == 3 * REPORTED_TOKENS)
    refused = call(second, key)
    assert refused.status_code == 429 and "tpm_limit is 1000 tokens per minute" in refused.json()["message"]
    assert refused.headers["retry-after"] == "47"
