"""Budgets and rate limits: the counters on their own, then through real proxies (one, and two sharing Redis)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from proxy.errors import RateLimitError
from proxy.limits import Limit, LocalCounters, ProxyBudget, call_limits, current_period, refusal
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.server import LiveServer, free_port
from tests.redis_scratch import REDIS_ENV, async_redis, needs_redis, new_prefix, sync_redis
from tests.serving import MASTER_KEY, admin, config_for, running_proxy, wait_until

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)

# --- the pieces ------------------------------------------------------------------------------------


def test_current_period_rolls_forward_from_a_passed_reset_time():
    assert current_period(None, None, Decimal("3"), NOW) == (None, Decimal("3"))
    later = NOW + timedelta(hours=1)
    assert current_period(later, "1d", Decimal("3"), NOW) == (later, Decimal("3"))
    passed = NOW - timedelta(seconds=5)
    assert current_period(passed, "2s", Decimal("3"), NOW) == (NOW + timedelta(seconds=1), Decimal(0))


def _rpm(counter: str, limit: int) -> Limit:
    return Limit("rpm", counter, limit, "key 'k'", "rpm_limit")


def _budget(limit: str, *, seed: str = "0", period: datetime | None = None) -> Limit:
    return Limit("budget", "key:k", Decimal(limit), "key 'k'", "max_budget", period, Decimal(seed))


def test_local_rpm_admits_exactly_the_limit_and_takes_all_or_nothing():
    counters = LocalCounters()
    key, model = _rpm("key:k", 3), _rpm("key:k:model:m", 2)
    results = [counters.admit([key, model], Decimal(0), NOW) for _ in range(4)]
    assert [r is None for r in results] == [True, True, False, False]
    assert results[2].limit is model and 0 < results[2].retry_after <= 60
    # the key window was not charged for the refused calls: one more call on another model fits
    assert counters.admit([key], Decimal(0), NOW) is None
    assert counters.admit([key], Decimal(0), NOW).limit is key


def test_local_parallel_slots_are_released():
    counters = LocalCounters()
    slot = Limit("parallel", "key:k", 1, "key 'k'", "max_parallel_requests")
    assert counters.admit([slot], Decimal(0), NOW) is None
    assert counters.admit([slot], Decimal(0), NOW).limit is slot
    counters.release(("key:k",), (), Decimal(0), Decimal(0))
    assert counters.admit([slot], Decimal(0), NOW) is None


def test_local_budget_reserves_in_flight_and_settles_actual_cost():
    counters = LocalCounters()
    budget = _budget("0.01")
    for _ in range(5):  # five calls in flight, each reserving 0.002
        assert counters.admit([budget], Decimal("0.002"), NOW) is None
    refused = counters.admit([budget], Decimal("0.002"), NOW)
    assert refused.limit is budget and refused.used == Decimal("0.010")
    for _ in range(5):  # they fail: nothing spent, reservations freed
        counters.release((), (("key:k", None),), Decimal("0.002"), Decimal(0))
    assert counters.admit([budget], Decimal("0.002"), NOW) is None
    counters.release((), (("key:k", None),), Decimal("0.002"), Decimal("0.009"))
    assert counters.spent("key:k", None) == Decimal("0.009")
    assert counters.admit([budget], Decimal("0.002"), NOW) is None


def test_local_budget_merges_database_spend_and_rolls_over_periods():
    counters = LocalCounters()
    first = NOW + timedelta(seconds=2)
    assert counters.admit([_budget("1", seed="0.5", period=first)], Decimal(0), NOW) is None
    counters.release((), (("key:k", first),), Decimal(0), Decimal("0.2"))
    assert counters.spent("key:k", first) == Decimal("0.7")
    counters.admit([_budget("1", seed="0.9", period=first)], Decimal(0), NOW)  # another replica spent more
    assert counters.spent("key:k", first) == Decimal("0.9")
    later, second = NOW + timedelta(seconds=3), NOW + timedelta(seconds=4)
    assert counters.admit([_budget("1", seed="0", period=second)], Decimal(0), later) is None
    assert counters.spent("key:k", second) == Decimal("0")


def test_call_limits_collects_key_model_end_user_default_and_proxy_limits():
    key = SimpleNamespace(key_alias="team-a", key_name="sk-...abcd", rpm_limit=10, tpm_limit=None,
                          model_rpm_limit={"m": 2},
                          max_parallel_requests=3, max_budget=Decimal("5"), budget_duration="1d",
                          budget_reset_at=NOW + timedelta(hours=1), spend=Decimal("1"))
    user = SimpleNamespace(rpm_limit=4, tpm_limit=None, max_parallel_requests=None, max_budget=None,
                           budget_duration=None, budget_reset_at=None, spend=Decimal("0.5"))
    limits = call_limits(key_hash="h", key=key, alias="m", end_user_id="bob", end_user=user,
                         default_end_user_budget=Decimal("2"), proxy=ProxyBudget(Decimal("100"), None), now=NOW)
    assert [(lim.kind, lim.counter, lim.setting) for lim in limits] == [
        ("rpm", "key:h", "rpm_limit"), ("rpm", "key:h:model:m", "model_rpm_limit for model 'm'"),
        ("parallel", "key:h", "max_parallel_requests"), ("budget", "key:h", "max_budget"),
        ("rpm", "end_user:bob", "rpm_limit"), ("budget", "end_user:bob", "max_end_user_budget"),
        ("budget", "proxy", "max_budget"),
    ]
    assert limits[3].seed == Decimal("1") and limits[5].seed == Decimal("0.5")
    assert call_limits(key_hash=None, key=None, alias="m", end_user_id=None, end_user=None,
                       default_end_user_budget=Decimal("2"), proxy=None, now=NOW) == []


def test_budget_refusal_names_the_budget_and_its_reset():
    reset = NOW + timedelta(seconds=90)
    error = refusal(_budget("0.01", period=reset), now=NOW, used=Decimal("0.0100000000"))
    assert isinstance(error, RateLimitError) and error.status == 429 and error.retry_after == 90
    assert error.message == ("Budget exceeded for key 'k': spent $0.01 of max_budget $0.01; "
                             f"it resets at {reset.isoformat()}.")
    lifetime = refusal(_budget("2"), now=NOW, used=Decimal(3))
    assert "does not reset" in lifetime.message
    assert lifetime.retry_after is None and not lifetime.resets
    almost = refusal(_budget("0.01", period=NOW + timedelta(seconds=90.2)), now=NOW)
    assert almost.retry_after == 91  # never earlier than the reset


def test_a_budget_that_never_resets_gets_no_retry_after_one_that_resets_counts_down():
    from proxy.api.rendering import error_response

    assert "retry-after" not in error_response(refusal(_budget("2"), now=NOW, used=Decimal(3))).headers
    reset = NOW + timedelta(days=29, seconds=5)
    resets = error_response(refusal(_budget("2", period=reset), now=NOW, used=Decimal(3)))
    assert resets.status_code == 429 and resets.headers["retry-after"] == str(29 * 86400 + 5)
    assert error_response(RateLimitError("over")).headers["retry-after"] == "1"  # other 429s keep theirs


@needs_redis
def test_redis_counters_check_and_take_atomically():
    from proxy.limits import RedisCounters, Refused

    prefix = new_prefix()

    async def scenario() -> None:
        async with async_redis(prefix) as client:
            counters = RedisCounters(prefix)
            rpm, budget = _rpm("key:k", 10), _budget("0.01", seed="0.004")
            results = await asyncio.gather(*(counters.admit(client, [rpm], Decimal(0), f"m{i}", NOW)
                                             for i in range(30)))
            assert sum(not isinstance(r, Refused) for r in results) == 10
            refused = next(r for r in results if isinstance(r, Refused))
            assert 0 < refused.retry_after <= 60
            taken = [await counters.admit(client, [budget], Decimal("0.002"), f"b{i}", NOW) for i in range(4)]
            assert [isinstance(t, Refused) for t in taken] == [False, False, False, True]
            assert taken[3].used == Decimal("0.010")
            await counters.release(client, taken[0], "b0", Decimal("0.002"), Decimal("0.001"))
            assert await counters.spent(client, "key:k", None) == Decimal("0.005")
            assert not isinstance(await counters.admit(client, [budget], Decimal("0.002"), "b9", NOW), Refused)
            free_budget = Limit("budget", "key:free", Decimal(1), "key 'free'", "max_budget")
            free = await counters.admit(client, [free_budget], Decimal(0), "f1", NOW)  # a free model reserves nothing
            await counters.release(client, free, "f1", Decimal(0), Decimal(0))
            assert await counters.spent(client, "key:free", None) == Decimal(0)

    asyncio.run(scenario())


# --- through the proxy -----------------------------------------------------------------------------


class Gate:
    """A Cohere-shaped upstream that holds every request until released (for max_parallel_requests)."""

    def __init__(self) -> None:
        self.waiting = 0
        self.open = threading.Event()

    async def rerank(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.waiting += 1
        try:
            while not self.open.is_set():
                await asyncio.sleep(0.01)
        finally:
            self.waiting -= 1
        return JSONResponse({"id": "x", "results": [{"index": i, "relevance_score": 0.5}
                                                    for i in range(len(body["documents"]))],
                             "meta": {"billed_units": {"search_units": 1}}})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v2/rerank", self.rerank, methods=["POST"])])


@pytest.fixture(scope="module")
def gate():
    gate = Gate()
    with LiveServer(gate.app()) as server:
        gate.url = server.url
        yield gate


@pytest.fixture(scope="module")
def proxy_url(fake_cohere, gate, tmp_path_factory):
    db = tmp_path_factory.mktemp("limits-db") / "spend.db"
    config = config_for(fake_cohere.url, f"sqlite:///{db}", general_settings={
        "max_end_user_budget": 0.006, "proxy_budget_rescheduler_min_time": 1,
        "proxy_budget_rescheduler_max_time": 1})
    config["model_list"].append({"model_name": "gated", "litellm_params": {
        "model": "cohere/rerank-v3.5", "api_key": "os.environ/TEST_COHERE_KEY", "api_base": gate.url}})
    with running_proxy(config) as server:
        yield server.url


def call(url: str, key: str = MASTER_KEY, model: str = "rerank-english-v3.0", **extra) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "query": CAPITAL_QUERY, "documents": CAPITALS, **extra})


def burst(urls: list[str], key: str, count: int, model: str = "local-bm25") -> list[httpx.Response]:
    """`count` calls at once, spread over `urls`."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(
                client.post(urls[i % len(urls)] + "/v2/rerank", headers={"Authorization": f"Bearer {key}"},
                            json={"model": model, "query": CAPITAL_QUERY, "documents": CAPITALS})
                for i in range(count)))

    return asyncio.run(run())


def new_key(client: httpx.Client, **fields) -> str:
    response = client.post("/key/generate", json=fields)
    assert response.status_code == 200, response.text
    return response.json()["key"]


def test_key_budget_refuses_exactly_the_sixth_call(proxy_url, admin_client):
    key = new_key(admin_client, key_alias="budget-5", max_budget=0.01)
    statuses = [call(proxy_url, key).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = call(proxy_url, key)
    assert refused.status_code == 429
    assert refused.json()["message"] == ("Budget exceeded for key 'budget-5': spent $0.01 of max_budget $0.01; "
                                         "this budget does not reset (no budget_duration), so retrying will "
                                         "not help.")
    assert "retry-after" not in refused.headers  # waiting would not help
    info = admin_client.get("/key/info", params={"key": key}).json()["info"]
    assert float(info["spend"]) == pytest.approx(0.01) and info["remaining_budget"] == pytest.approx(0)


def test_key_budget_holds_under_concurrency(proxy_url, admin_client):
    key = new_key(admin_client, max_budget=0.01)
    responses = burst([proxy_url], key, 20, model="rerank-english-v3.0")
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15


def test_budget_resets_after_its_duration_on_each_database(fake_cohere, fresh_db_url):
    config = config_for(fake_cohere.url, fresh_db_url, general_settings={
        "proxy_budget_rescheduler_min_time": 0.5, "proxy_budget_rescheduler_max_time": 0.5})
    with running_proxy(config) as server, admin(server.url) as client:
        created = client.post("/key/generate", json={"key_alias": "budget-2s", "max_budget": 0.004,
                                                     "budget_duration": "2s"}).json()
        key, first_reset = created["key"], datetime.fromisoformat(created["budget_reset_at"])
        assert [call(server.url, key).status_code for _ in range(2)] == [200, 200]
        refused = call(server.url, key)
        assert refused.status_code == 429 and "resets at" in refused.json()["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        wait_until(lambda: call(server.url, key).status_code == 200, timeout=20, interval=0.2)
        info = client.get("/key/info", params={"key": key}).json()["info"]
        assert float(info["spend"]) <= 0.004 and datetime.fromisoformat(info["budget_reset_at"]) > first_reset

        def stored_reset() -> datetime | None:  # the background task moved the stored period on too
            keys = client.get("/key/list", params={"return_full_object": True}).json()["keys"]
            moved = datetime.fromisoformat(keys[0]["budget_reset_at"])
            return moved if moved > first_reset else None

        wait_until(stored_reset, timeout=20, interval=0.2)


def test_end_user_budget_and_the_default_end_user_budget(proxy_url, admin_client):
    created = admin_client.post("/customer/new", json={"user_id": "budget-bob", "max_budget": 0.004})
    assert created.status_code == 200
    assert [call(proxy_url, user="budget-bob").status_code for _ in range(3)] == [200, 200, 429]
    refused = call(proxy_url, user="budget-bob")
    assert "end-user 'budget-bob'" in refused.json()["message"] and "max_budget $0.004" in refused.json()["message"]
    assert "retry-after" not in refused.headers  # no budget_duration: it never resets
    # no record of their own: general_settings.max_end_user_budget (0.006) applies
    assert [call(proxy_url, user="budget-carol").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert "max_end_user_budget $0.006" in call(proxy_url, user="budget-carol").json()["message"]
    # raising the end-user's budget applies at once
    assert admin_client.post("/customer/update", json={"user_id": "budget-bob", "max_budget": 0.006}).status_code == 200
    assert call(proxy_url, user="budget-bob").status_code == 200
    info = admin_client.get("/customer/info", params={"end_user_id": "budget-bob"}).json()
    assert float(info["spend"]) == pytest.approx(0.006) and info["remaining_budget"] == pytest.approx(0)


def test_an_end_user_budget_with_a_duration_says_when_to_retry(proxy_url, admin_client):
    created = admin_client.post("/customer/new", json={"user_id": "hourly-hal", "max_budget": 0.002,
                                                        "budget_duration": "1h"})
    reset = datetime.fromisoformat(created.json()["budget_reset_at"])
    assert call(proxy_url, user="hourly-hal").status_code == 200
    refused = call(proxy_url, user="hourly-hal")
    assert refused.status_code == 429 and f"it resets at {reset.isoformat()}" in refused.json()["message"]
    expected = (reset - datetime.now(UTC)).total_seconds()
    assert expected - 5 <= int(refused.headers["retry-after"]) <= expected + 1


@pytest.mark.parametrize("prefix", ["/customer", "/end_user"])  # LiteLLM keeps the older /end_user paths too
def test_blocked_end_user_is_refused(proxy_url, admin_client, prefix):
    assert admin_client.post(f"{prefix}/block", json={"user_ids": ["blocked-dan"]}).status_code == 200
    assert call(proxy_url, user="blocked-dan").status_code == 403
    assert admin_client.post(f"{prefix}/unblock", json={"user_ids": ["blocked-dan"]}).status_code == 200
    assert call(proxy_url, user="blocked-dan").status_code == 200


def test_rpm_limit_admits_exactly_ten_of_a_hundred_concurrent_calls(proxy_url, admin_client):
    key = new_key(admin_client, key_alias="rpm-10", rpm_limit=10)
    responses = burst([proxy_url], key, 100)
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 90
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "rpm_limit is 10 requests per minute" in refused.json()["message"]


def test_model_rpm_limit_is_per_alias(proxy_url, admin_client):
    key = new_key(admin_client, model_rpm_limit={"local-bm25": 2})
    assert [call(proxy_url, key, model="local-bm25").status_code for _ in range(3)] == [200, 200, 429]
    assert "model 'local-bm25'" in call(proxy_url, key, model="local-bm25").json()["message"]
    assert call(proxy_url, key).status_code == 200  # another alias is not limited


def test_end_user_rpm_limit(proxy_url, admin_client):
    admin_client.post("/customer/new", json={"user_id": "rpm-erin", "rpm_limit": 2})
    assert [call(proxy_url, model="local-bm25", user="rpm-erin").status_code for _ in range(3)] == [200, 200, 429]


def test_max_parallel_requests(proxy_url, admin_client, gate):
    key = new_key(admin_client, max_parallel_requests=2)
    gate.open.clear()
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(call, proxy_url, key, "gated") for _ in range(5)]
        wait_until(lambda: gate.waiting == 2 and sum(f.done() for f in futures) == 3)
        refused = [f.result() for f in futures if f.done()]
        assert [r.status_code for r in refused] == [429] * 3
        assert "max_parallel_requests is 2" in refused[0].json()["message"]
        gate.open.set()
        assert sorted(f.result().status_code for f in futures) == [200, 200, 429, 429, 429]
    assert call(proxy_url, key, "gated").status_code == 200  # the slots were given back


def test_admin_limits_are_validated(admin_client):
    assert admin_client.post("/key/generate", json={"rpm_limit": -1}).status_code == 422
    assert admin_client.post("/key/generate", json={"max_budget": 1, "budget_duration": "soon"}).status_code == 422
    assert admin_client.post("/customer/new", json={"user_id": "neg", "max_budget": -2}).status_code == 422


def test_proxy_wide_budget(fake_cohere, tmp_path):
    config = config_for(fake_cohere.url, f"sqlite:///{tmp_path / 'spend.db'}",
                        general_settings={"max_budget": 0.004, "budget_duration": "30d"})
    with running_proxy(config) as server:
        assert [call(server.url).status_code for _ in range(2)] == [200, 200]
        refused = call(server.url, model="local-bm25")
        assert refused.status_code == 429 and "the proxy" in refused.json()["message"]
        assert int(refused.headers["retry-after"]) > 29 * 86400


def test_redis_outage_falls_back_to_per_process_limits(fake_cohere, tmp_path, caplog):
    config = config_for(fake_cohere.url, f"sqlite:///{tmp_path / 'spend.db'}",
                        router_settings={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with caplog.at_level(logging.WARNING, logger="proxy.redis"), running_proxy(config) as server:
        with admin(server.url) as client:
            key = new_key(client, rpm_limit=3)
        assert [call(server.url, key, model="local-bm25").status_code for _ in range(5)] == [200] * 3 + [429] * 2
    warnings = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
    assert len(warnings) == 1 and "rate limits and budgets are counted per process" in warnings[0]


# --- two replicas sharing Redis --------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(fake_cohere, tmp_path_factory):
    prefix = new_prefix()
    with sync_redis(prefix):
        db = tmp_path_factory.mktemp("replicas-db") / "spend.db"
        config = config_for(fake_cohere.url, f"sqlite:///{db}", general_settings={"redis_key_prefix": prefix},
                            router_settings={"redis_url": os.environ[REDIS_ENV]})
        with running_proxy(config) as first, running_proxy(config) as second:
            yield [first.url, second.url]


@pytest.mark.redis
def test_two_replicas_share_the_rpm_limit(replicas):
    with admin(replicas[0]) as client:
        key = new_key(client, rpm_limit=10)
    responses = burst(replicas, key, 100)
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 90


@pytest.mark.redis
def test_two_replicas_share_the_budget(replicas):
    with admin(replicas[0]) as client:
        sequential = new_key(client, max_budget=0.01)
        concurrent = new_key(client, max_budget=0.01)
    statuses = [call(replicas[i % 2], sequential).status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    responses = burst(replicas, concurrent, 20, model="rerank-english-v3.0")
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
    with admin(replicas[1]) as client:
        info = client.get("/key/info", params={"key": sequential}).json()["info"]
    assert float(info["spend"]) == pytest.approx(0.01)
