"""The router over real fake upstreams (HTTP on loopback), through the SDK face `proxy.Router`.

Strategies are checked by where calls land; faults are scripted on the fakes; time is a manual clock
injected into the router, so cooldowns expire when a test says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import proxy
from proxy.errors import DeploymentAtCapacityError
from proxy.request import make_request
from proxy.routing import Outcome
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.body_checks import token_count
from tests.fakes.fireworks_ai import FakeFireworksAI
from tests.fakes.server import dropping_server, free_port
from tests.routing_support import Clock
from tests.routing_support import cohere_deployment as entry


@pytest.fixture
async def make():
    routers: list[proxy.Router] = []

    def build(model_list: list[dict], **kwargs: Any) -> proxy.Router:
        settings = {"seed": 1, "clock": Clock(), "retry_after": 0.001, "max_retry_after": 0.01, **kwargs}
        router = proxy.Router(model_list=model_list, **settings)
        routers.append(router)
        return router

    yield build
    for router in routers:
        await router.aclose()


REQUEST = make_request(CAPITAL_QUERY, CAPITALS, top_n=2)


async def route(router: proxy.Router, alias: str, **kwargs: Any) -> Outcome:
    return await router.route(alias, REQUEST, **kwargs)


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- strategies ------------------------------------------------------------------------------------------

async def test_simple_shuffle_spreads_calls_by_weight(make, a, b):
    router = make([entry("m", "a", a.url, weight=3), entry("m", "b", b.url, weight=1)])
    for _ in range(200):
        await route(router, "m")
    assert len(a.requests) + len(b.requests) == 200
    assert 125 <= len(a.requests) <= 175


async def test_simple_shuffle_uses_rpm_as_weight_when_no_weight_is_given(make, a, b):
    router = make([entry("m", "a", a.url, rpm=1000), entry("m", "b", b.url, rpm=9000)])
    for _ in range(100):
        await route(router, "m")
    assert len(a.requests) <= 25 and len(b.requests) >= 75


async def test_a_seeded_router_routes_the_same_way_every_time(make, a, b, c):
    model_list = [entry("m", "a", a.url), entry("m", "b", b.url), entry("m", "c", c.url)]

    async def sequence(seed: int) -> list[str]:
        router = make(model_list, seed=seed)
        return [(await route(router, "m")).deployment.id for _ in range(30)]

    first = await sequence(11)
    assert first == await sequence(11)
    assert first != await sequence(12)
    assert set(first) == {"a", "b", "c"}


async def test_least_busy_sends_each_call_to_the_deployment_with_fewest_in_flight(make, a, b):
    router = make([entry("m", "a", a.url), entry("m", "b", b.url)], routing_strategy="least-busy")
    a.hold()
    b.hold()
    first = [asyncio.create_task(route(router, "m")) for _ in range(6)]
    await until(lambda: a.arrived + b.arrived == 6)
    assert a.arrived == b.arrived == 3
    b.release()
    await until(lambda: sum(task.done() for task in first) == 3)
    for _ in range(4):  # a still has 3 calls in flight, b none
        assert (await route(router, "m")).deployment.id == "b"
    a.release()
    assert all(outcome.response is not None for outcome in await asyncio.gather(*first))
    assert (a.arrived, b.arrived) == (3, 7)


async def test_latency_based_prefers_the_faster_and_returns_to_one_that_recovered(make, a, b):
    router = make([entry("m", "a", a.url), entry("m", "b", b.url)], routing_strategy="latency-based-routing")
    a.delay = 0.05
    for _ in range(30):
        await route(router, "m")
    assert len(b.requests) >= 22 and len(a.requests) >= 2  # a was measured, then explored now and then
    a.delay, b.delay = 0.0, 0.15
    before = len(a.requests)
    for _ in range(40):
        await route(router, "m")
    assert len(a.requests) - before >= 28


async def test_usage_based_keeps_each_deployment_under_its_rpm(make, a, b):
    clock = Clock()
    router = make([entry("m", "a", a.url, rpm=3), entry("m", "b", b.url, rpm=6)],
                  routing_strategy="usage-based-routing", clock=clock)
    for _ in range(9):
        await route(router, "m")
    assert (len(a.requests), len(b.requests)) == (3, 6)
    with pytest.raises(proxy.AllDeploymentsFailedError) as caught:
        await route(router, "m")
    assert caught.value.status == 429 and 0 < caught.value.retry_after <= 60
    assert "rpm limit" in caught.value.message
    assert (len(a.requests), len(b.requests)) == (3, 6)
    clock.advance(60)
    assert (await route(router, "m")).response is not None


async def test_pre_call_checks_enforce_rpm_with_any_strategy(make, a, b):
    router = make([entry("m", "a", a.url, rpm=2), entry("m", "b", b.url, rpm=2)], enable_pre_call_checks=True)
    for _ in range(4):
        await route(router, "m")
    assert (len(a.requests), len(b.requests)) == (2, 2)
    with pytest.raises(proxy.AllDeploymentsFailedError):
        await route(router, "m")


async def test_a_deployment_over_its_tpm_is_skipped_counting_reported_tokens(make, b):
    fireworks = FakeFireworksAI().start()
    try:
        tokens = token_count(CAPITAL_QUERY, CAPITALS)
        router = make([{"model_name": "m", "model_info": {"id": "fw"},
                        "litellm_params": {"model": "fireworks_ai/qwen3-reranker-8b", "api_key": "test-key",
                                           "api_base": fireworks.url, "tpm": tokens + 1, "order": 1}},
                       entry("m", "b", b.url, order=2)], routing_strategy="usage-based-routing")
        served = [(await route(router, "m")).deployment.id for _ in range(3)]
    finally:
        fireworks.stop()
    assert served == ["fw", "fw", "b"]  # after two calls fw has reported 2 × tokens > its tpm


async def test_max_parallel_requests_lets_n_of_n_plus_one_concurrent_calls_reach_the_upstream(make, a, caplog):
    router = make([entry("m", "a", a.url, max_parallel_requests=2)])
    a.hold()
    with caplog.at_level(logging.INFO, logger="proxy.routing"):
        calls = [asyncio.create_task(route(router, "m")) for _ in range(3)]
        await until(lambda: a.arrived == 2 and sum(call.done() for call in calls) == 1)
    await asyncio.sleep(0.05)  # time enough for a third call to arrive, were it sent
    assert a.arrived == 2
    refused = next(call for call in calls if call.done()).exception()
    assert isinstance(refused, proxy.AllDeploymentsFailedError)
    assert refused.status == 429 and refused.retry_after == 1
    assert [(d, type(e)) for d, e in refused.causes] == [("a", DeploymentAtCapacityError)]
    assert "at its max_parallel_requests (2 calls in flight)" in refused.message
    assert [r.levelname for r in caplog.records if "all deployments failed" in r.getMessage()] == ["INFO"]
    a.release()
    served = await asyncio.gather(*(call for call in calls if not call.done()))
    assert len(served) == 2 and all(outcome.deployment.id == "a" for outcome in served)
    assert (await route(router, "m")).response is not None  # the slots were given back


async def test_a_deployment_at_max_parallel_requests_is_skipped_for_another(make, a, b):
    router = make([entry("m", "a", a.url, max_parallel_requests=1, order=1), entry("m", "b", b.url, order=2)])
    a.hold()
    held = asyncio.create_task(route(router, "m"))
    await until(lambda: a.arrived == 1)
    outcome = await asyncio.wait_for(route(router, "m"), 10)
    assert outcome.deployment.id == "b" and outcome.attempts == [] and a.arrived == 1
    a.release()
    assert (await held).deployment.id == "a"
    assert (await route(router, "m")).deployment.id == "a"


# -- priority tiers, failures, cooldowns ---------------------------------------------------------------

async def test_order_tiers_are_used_only_when_every_lower_order_is_unavailable(make, a, b, c):
    clock = Clock()
    router = make([entry("m", "c", c.url), entry("m", "b", b.url, order=2), entry("m", "a", a.url, order=1)],
                  clock=clock, cooldown_time=5)
    for _ in range(5):
        assert (await route(router, "m")).deployment.id == "a"
    a.fail_next("500", times=3)
    for _ in range(3):  # each failure fails over to the next tier within the same request
        outcome = await route(router, "m")
        assert outcome.deployment.id == "b" and [d for d, _ in outcome.attempts] == ["a"]
        assert not outcome.fallback_used
    assert router.deployment_states()["a"] == "cooldown"
    outcome = await route(router, "m")
    assert outcome.deployment.id == "b" and outcome.attempts == []
    b.fail_next("429")
    outcome = await route(router, "m")
    assert outcome.deployment.id == "c" and [d for d, _ in outcome.attempts] == ["b"]
    assert router.deployment_states() == {"a": "cooldown", "b": "cooldown", "c": "healthy"}
    clock.advance(6)
    assert router.deployment_states() == {"a": "healthy", "b": "healthy", "c": "healthy"}
    assert (await route(router, "m")).deployment.id == "a"


async def test_a_failing_deployment_is_retried_with_backoff_until_it_answers(make, a):
    router = make([entry("m", "a", a.url)])
    a.fail_next("500", times=2)
    outcome = await route(router, "m")
    assert outcome.response is not None and len(a.requests) == 3
    assert [type(e) for _, e in outcome.attempts] == [proxy.UpstreamUnavailableError] * 2


async def test_an_upstream_timeout_is_retried(make, a):
    router = make([entry("m", "a", a.url, timeout=0.2)])
    a.fail_next("timeout")
    outcome = await route(router, "m")
    assert outcome.response is not None
    assert [type(e) for _, e in outcome.attempts] == [proxy.UpstreamTimeoutError]


async def test_dropped_connections_cool_a_deployment_down_and_it_recovers(make, b):
    clock = Clock()
    with dropping_server() as dropping:
        router = make([entry("m", "flaky", dropping, order=1), entry("m", "b", b.url, order=2)],
                      clock=clock, allowed_fails=3, cooldown_time=5)
        for _ in range(3):
            outcome = await route(router, "m")
            assert outcome.deployment.id == "b"
            assert [(d, type(e)) for d, e in outcome.attempts] == [("flaky", proxy.UpstreamUnavailableError)]
        assert router.deployment_states()["flaky"] == "cooldown"
        for _ in range(3):
            assert (await route(router, "m")).attempts == []  # skipped while cooling down
    clock.advance(5.5)
    assert router.deployment_states()["flaky"] == "healthy"
    outcome = await route(router, "m")
    assert [d for d, _ in outcome.attempts] == ["flaky"]  # tried again (now nothing listens: refused)


async def test_a_rate_limited_only_deployment_cools_but_is_still_tried_when_nothing_else_is_left(make, a):
    clock = Clock()
    router = make([entry("m", "a", a.url)], clock=clock, cooldown_time=2)
    a.fail_next("429")
    outcome = await route(router, "m")
    assert outcome.response is not None and len(a.requests) == 2
    assert [type(e) for _, e in outcome.attempts] == [proxy.UpstreamRateLimitError]
    assert outcome.attempts[0][1].retry_after == 1
    assert router.deployment_states() == {"a": "cooldown"}
    assert (await route(router, "m")).response is not None


async def test_a_429_retry_after_longer_than_the_cooldown_sets_its_length(make, a, b):
    clock = Clock()
    router = make([entry("m", "a", a.url, order=1), entry("m", "b", b.url, order=2)], clock=clock,
                  cooldown_time=0.5)
    a.fail_next("429")  # Retry-After: 1
    assert (await route(router, "m")).deployment.id == "b"
    clock.advance(0.8)
    assert router.deployment_states()["a"] == "cooldown"
    clock.advance(0.3)
    assert router.deployment_states()["a"] == "healthy"


async def test_the_upstreams_rejection_of_the_request_is_never_retried_nor_falls_back(make, a, c):
    router = make([entry("m", "a", a.url), entry("m", "a2", a.url), entry("safe", "c", c.url)],
                  fallbacks=[{"m": ["safe"]}])
    a.fail_next("400")
    with pytest.raises(proxy.UpstreamRejectedError) as caught:
        await route(router, "m")
    assert caught.value.status == 400
    assert len(a.requests) == 1 and c.requests == []
    assert router.deployment_states()["a"] == "healthy"


async def test_a_deployment_missing_its_key_fails_over(make, b):
    router = make([{"model_name": "m", "model_info": {"id": "nokey"},
                    "litellm_params": {"model": "cohere/rerank-v3.5", "order": 1}},
                   entry("m", "b", b.url, order=2)], environ={})
    outcome = await route(router, "m")
    assert outcome.deployment.id == "b"
    assert [(d, type(e)) for d, e in outcome.attempts] == [("nokey", proxy.ConfigurationError)]


@pytest.mark.parametrize(("max_retries", "calls"), [(None, 4), (1, 2), (0, 1)])
async def test_max_retries_caps_how_often_one_deployment_is_tried_again(make, a, max_retries, calls):
    params = {} if max_retries is None else {"max_retries": max_retries}
    router = make([entry("m", "a", a.url, **params)], num_retries=3)
    a.fail_next("503", times=5)
    with pytest.raises(proxy.AllDeploymentsFailedError):
        await router.route("m", REQUEST)
    assert len(a.requests) == calls


async def test_a_deployment_that_cannot_be_called_is_not_retried_and_its_fallback_serves_at_once(make, b):
    router = make([{"model_name": "m", "model_info": {"id": "nokey"},
                    "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": "os.environ/NOT_SET_ANYWHERE"}},
                   entry("f", "b", b.url)], environ={}, num_retries=3, fallbacks=[{"m": ["f"]}])
    outcome = await router.route("m", REQUEST)
    assert outcome.deployment.id == "b" and outcome.fallback_used
    assert [(d, type(e)) for d, e in outcome.attempts] == [("nokey", proxy.ConfigurationError)]


async def test_when_everything_fails_one_error_keeps_every_cause_and_one_warning_lists_them(make, a, caplog):
    secret_query = "zebra-unicorn-quartz"
    router = make([entry("m", "a", a.url, order=1),
                   entry("m", "dead", f"http://127.0.0.1:{free_port()}", order=2)], num_retries=0)
    a.fail_next("503")
    with caplog.at_level(logging.WARNING, logger="proxy.routing"), \
            pytest.raises(proxy.AllDeploymentsFailedError) as caught:
        await router.route("m", make_request(secret_query, ["a zebra", "b"]))
    error = caught.value
    assert error.status == 503 and error.retry_after >= 1
    assert [(d, type(e)) for d, e in error.causes] == [("a", proxy.UpstreamUnavailableError),
                                                      ("dead", proxy.UpstreamUnavailableError)]
    lines = [r.getMessage() for r in caplog.records if "all deployments failed" in r.getMessage()]
    assert len(lines) == 1
    assert "a UpstreamUnavailableError: cohere returned HTTP 503" in lines[0]
    assert "dead UpstreamUnavailableError: cohere: could not reach upstream" in lines[0]
    assert secret_query not in caplog.text


async def test_the_overall_timeout_bounds_every_attempt_and_answers_504(make, a):
    router = make([entry("m", "a", a.url, model="fault-timeout")], timeout=0.3)
    with pytest.raises(proxy.AllDeploymentsFailedError) as caught:
        await route(router, "m")
    assert caught.value.status == 504
    assert "overall timeout of 0.3s" in caught.value.causes[-1][1].message


# -- fallbacks ------------------------------------------------------------------------------------------

async def test_fallback_chain_request_then_config_then_default(make, a, b, c):
    router = make([entry("down", "down", a.url, model="fault-500"),
                   entry("down2", "down2", a.url, model="fault-503"),
                   entry("ok-b", "b", b.url), entry("ok-c", "c", c.url)],
                  fallbacks=[{"down": ["down2", "ok-b"]}], default_fallbacks=["ok-c"], num_retries=0)
    outcome = await route(router, "down")
    assert (outcome.alias, outcome.deployment.id, outcome.fallback_used) == ("ok-b", "b", True)
    assert [d for d, _ in outcome.attempts] == ["down", "down2"]
    outcome = await route(router, "down", fallbacks=["ok-c"])
    assert (outcome.alias, outcome.fallback_used) == ("ok-c", True)
    outcome = await route(router, "down2")  # no configured fallbacks: the defaults
    assert outcome.alias == "ok-c"
    outcome = await route(router, "down", fallbacks=["no-such-alias"])
    assert outcome.alias == "ok-b"


async def test_a_cooled_alias_falls_back_before_its_cooled_deployment_is_tried_again(make, a, b):
    router = make([entry("m", "a", a.url), entry("spare", "b", b.url)], fallbacks=[{"m": ["spare"]}],
                  allowed_fails=1)
    a.fail_next("500", times=10)
    outcome = await route(router, "m")
    assert outcome.alias == "spare" and [d for d, _ in outcome.attempts] == ["a"]
    outcome = await route(router, "m")
    assert outcome.alias == "spare" and outcome.attempts == [] and len(a.requests) == 1


async def test_a_model_group_alias_is_its_alias_same_deployments_state_and_fallbacks(make, a, b):
    router = make([entry("m", "a", a.url), entry("spare", "b", b.url)], fallbacks=[{"m": ["spare"]}],
                  model_group_alias={"old": "m", "older": {"model": "m", "hidden": True}}, allowed_fails=1)
    assert set(router.aliases) == {"m", "spare", "old", "older"} and router.hidden_aliases == {"older"}
    outcome = await route(router, "old")
    assert (outcome.alias, outcome.deployment.id, outcome.fallback_used) == ("m", "a", False)
    a.fail_next("500", times=10)
    outcome = await route(router, "older")  # `a` fails and cools; m's fallbacks apply to its other names
    assert (outcome.alias, outcome.fallback_used) == ("spare", True) and [d for d, _ in outcome.attempts] == ["a"]
    outcome = await route(router, "m")  # the cooldown earned through "older" is m's own
    assert outcome.alias == "spare" and outcome.attempts == [] and len(a.requests) == 2
    assert sorted(r.deployment.id for r in await router.check_health()) == ["a", "b"]  # each probed once


# -- health ----------------------------------------------------------------------------------------------

async def test_health_checks_feed_cooldowns(make, a, b):
    dead = f"http://127.0.0.1:{free_port()}"
    router = make([entry("m", "a", a.url), entry("m", "dead", dead, api_key="sk-secret-upstream")],
                  allowed_fails=1)
    a.fail_next("500")
    results = {r.deployment.id: r for r in await router.check_health()}
    assert not results["a"].ok and not results["dead"].ok
    assert router.deployment_states() == {"a": "cooldown", "dead": "cooldown"}
    assert a.last.body["documents"] == ["ok"]
    results = {r.deployment.id: r for r in await router.check_health()}
    assert results["a"].ok and router.deployment_states()["a"] == "healthy"
    described = results["dead"].describe()
    assert described["error"].startswith("UpstreamUnavailableError") and "sk-secret" not in str(described)


# -- the SDK face ------------------------------------------------------------------------------------------

def test_sdk_router_sync_and_async_on_one_instance(a):
    fake = a
    router = proxy.Router(model_list=[entry("m", "a", fake.url), {"model_name": "local",
                                                                  "litellm_params": {"model": "local/bm25"}}],
                          fallbacks=[{"m": ["local"]}], routing_strategy="least-busy", num_retries=1)
    first = router.rerank("m", CAPITAL_QUERY, CAPITALS, top_n=1)
    assert len(first.results) == 1 and first.deployment == "a"

    async def twice() -> list[proxy.RerankResponse]:
        try:
            return [await router.arerank("m", CAPITAL_QUERY, CAPITALS) for _ in range(2)]
        finally:
            await router.aclose()

    assert [r.deployment for r in asyncio.run(twice())] == ["a", "a"]
    assert [r.deployment for r in asyncio.run(twice())] == ["a", "a"]  # a second event loop
    fake.fail_next("500", times=4)
    fallback = router.rerank("m", CAPITAL_QUERY, CAPITALS)
    assert fallback.deployment == "local#0" and fallback.results[0].index == 2
    router.close()
    assert len(fake.requests) == 5 + 2


def test_sdk_router_refuses_unknown_models_and_strategies():
    router = proxy.Router(model_list=[{"model_name": "local", "litellm_params": {"model": "local/bm25"}}])
    with pytest.raises(proxy.ModelNotFoundError):
        router.rerank("nope", "q", ["d"])
    with pytest.raises(ValueError, match="unknown routing_strategy"):
        proxy.Router(model_list=[], routing_strategy="round-robin")
