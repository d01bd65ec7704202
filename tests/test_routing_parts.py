"""Routing's pure parts: strategies with a seeded RNG, priority tiers, routing fields, backoff, cooldown rules."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from random import Random

import pytest
import yaml

from proxy.deployments import resolve_deployment
from proxy.errors import (
    InvalidRequestError,
    UpstreamAuthError,
    UpstreamRateLimitError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from proxy.routing import Router
from proxy.routing.cooldowns import CooldownPolicy, Cooldowns
from proxy.routing.picker import LeastBusy, LeastUsed, LowestLatency, SimpleShuffle, make_strategy
from proxy.routing.policy import RetryPolicy
from proxy.routing.state import LocalState, Stats
from proxy.routing.table import build_group, parse_fallbacks, routing_fields
from proxy.settings import ConfigError, parse_config


def group(*params: dict, alias: str = "a"):
    deps = [resolve_deployment("cohere/rerank-v3.5", {"api_key": "k", **p}, environ={}, deployment_id=f"d{i}")
            for i, p in enumerate(params)]
    return build_group(alias, deps)


def picks(strategy, g, stats, n=1000, seed=1, now=0.0):
    rng = Random(seed)
    candidates = list(range(len(g.members)))
    return Counter(strategy.pick(candidates, g.members, stats, rng, now) for _ in range(n))


def test_simple_shuffle_follows_weight_then_rpm():
    weighted = group({"weight": 3}, {"weight": 1})
    counts = picks(SimpleShuffle(), weighted, [Stats(), Stats()])
    assert 700 <= counts[0] <= 800
    by_rpm = group({"rpm": 10}, {"rpm": 90})
    counts = picks(SimpleShuffle(), by_rpm, [Stats(), Stats()])
    assert 50 <= counts[0] <= 150


def test_the_same_seed_makes_the_same_choices():
    g = group({}, {}, {})
    stats = [Stats(), Stats(), Stats()]

    def sequence(seed: int) -> list[int]:
        rng = Random(seed)
        return [SimpleShuffle().pick([0, 1, 2], g.members, stats, rng, 0) for _ in range(50)]

    assert sequence(5) == sequence(5) != sequence(6)


def test_least_busy_picks_fewest_in_flight_and_breaks_ties_at_random():
    g = group({}, {}, {})
    assert picks(LeastBusy(), g, [Stats(busy=2), Stats(busy=1), Stats(busy=3)]) == {1: 1000}
    tied = picks(LeastBusy(), g, [Stats(busy=1), Stats(busy=1), Stats(busy=4)])
    assert set(tied) == {0, 1} and min(tied.values()) > 400


def test_lowest_latency_prefers_fast_explores_and_measures_the_unmeasured_first():
    g = group({}, {})
    fast, slow = Stats(latency=0.01, latency_at=100), Stats(latency=0.5, latency_at=100)
    counts = picks(LowestLatency(exploration=0.1), g, [slow, fast], now=100)
    assert counts[1] > 900 and counts[0] > 20  # exploration still measures the slow one
    assert picks(LowestLatency(exploration=0.0), g, [slow, fast], now=100) == {1: 1000}
    assert picks(LowestLatency(exploration=0.0), g, [Stats(), fast], now=100) == {0: 1000}
    stale = Stats(latency=0.5, latency_at=0)
    assert picks(LowestLatency(ttl=60, exploration=0.0), g, [stale, fast], now=100) == {0: 1000}
    close = picks(LowestLatency(lowest_latency_buffer=0.5, exploration=0), g,
                  [Stats(latency=0.012, latency_at=100), fast], now=100)
    assert set(close) == {0, 1}


def test_least_used_counts_only_the_current_minute():
    g = group({"rpm": 10}, {"rpm": 10})
    minute = 120 * 60.0
    assert picks(LeastUsed(), g, [Stats(minute=120, used=4), Stats(minute=120, used=2)], now=minute) == {1: 1000}
    assert picks(LeastUsed(), g, [Stats(minute=120, used=1), Stats(minute=119, used=9)], now=minute) == {1: 1000}


def test_unknown_strategy_or_argument_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="simple-shuffle, least-busy"):
        make_strategy("cost-based-routing")
    with pytest.raises(ValueError, match="allowed: exploration, lowest_latency_buffer, ttl"):
        make_strategy("latency-based-routing", {"tll": 5})
    assert make_strategy("usage-based-routing-v2").enforces_limits


def test_order_gives_priority_tiers_and_unordered_deployments_come_last():
    g = group({"order": 2}, {}, {"order": 1}, {"order": 2})
    assert g.tiers == ((2,), (0, 3), (1,))
    assert g.members[1].order == math.inf


@pytest.mark.parametrize(("params", "message"), [
    ({"rpm": "many"}, "rpm must be a number"),
    ({"rpm": 0}, "rpm must be >= 1"),
    ({"order": 0}, "order must be >= 1"),
    ({"weight": -1}, "weight must be >= 0"),
    ({"tpm": True}, "tpm must be >= 1"),
    ({"max_parallel_requests": 0}, "max_parallel_requests must be >= 1"),
    ({"max_parallel_requests": "two"}, "max_parallel_requests must be a number"),
])
def test_bad_routing_fields_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        routing_fields(params)


def test_bad_routing_fields_and_strategy_are_config_errors_with_their_path():
    raw = {"model_list": [{"model_name": "a", "litellm_params": {"model": "local/bm25", "rpm": -3}}],
           "router_settings": {"routing_strategy": "fastest"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {})
    text = str(caught.value)
    assert "model_list[0].litellm_params: rpm must be >= 1" in text
    assert "router_settings: unknown routing_strategy 'fastest'" in text


def test_deployment_ids_must_be_unique_given_or_generated_and_each_clash_names_its_path():
    bm25 = {"model": "local/bm25"}
    raw = {"model_list": [
        {"model_name": "a", "litellm_params": bm25, "model_info": {"id": "shared"}},
        {"model_name": "b", "litellm_params": bm25, "model_info": {"id": "shared"}},
        {"model_name": "c", "litellm_params": bm25, "model_info": {"id": "d#0"}},
        {"model_name": "d", "litellm_params": bm25},  # generated: d#0
        {"model_name": "e", "litellm_params": bm25, "model_info": {"id": "e-1"}},
    ]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {})
    assert caught.value.problems == [
        "model_list[1].model_info.id: deployment id 'shared' is already used by model_list[0].model_info.id; "
        "deployment ids must be unique",
        "model_list[3]: deployment id 'd#0' is already used by model_list[2].model_info.id (generated from "
        "model_name and position: set model_info.id); deployment ids must be unique",
    ]
    raw["model_list"][1]["model_info"]["id"] = "b-1"
    raw["model_list"][3]["model_info"] = {"id": "d-1"}
    assert [d.id for deps in parse_config(raw, {}).aliases.values() for d in deps] == ["shared", "b-1", "d#0",
                                                                                        "d-1", "e-1"]


def test_the_sdk_router_refuses_one_deployment_id_under_two_aliases():
    deployment = resolve_deployment("local/bm25", {}, environ={}, deployment_id="same")
    with pytest.raises(ValueError, match="deployment ids must be unique; used more than once: same"):
        Router({"a": [deployment], "b": [deployment]})


@pytest.mark.parametrize(("value", "message"), [
    ("nope", "'nope' is not a model_name in the model_list"),
    ({"model": "a", "hidden": "yes"}, "hidden must be true or false, got 'yes'"),
    ({"model": "a", "hide": True}, "unknown key(s) hide; use 'model' and 'hidden'"),
    ({"hidden": True}, "give the model_name it stands for, as a string or {model: ..., hidden: ...}"),
])
def test_model_group_alias_errors_name_their_yaml_path(value, message):
    raw = {"model_list": [{"model_name": "a", "litellm_params": {"model": "local/bm25"}}],
           "router_settings": {"model_group_alias": {"old-name": value}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {})
    assert caught.value.problems == [f"router_settings.model_group_alias.old-name: {message}"]
    with pytest.raises(ValueError, match=re.escape(f"model_group_alias 'old-name': {message}")):
        Router(parse_config({"model_list": raw["model_list"]}, {}).aliases, model_group_alias={"old-name": value})


def test_a_model_group_alias_may_not_shadow_a_model_name():
    raw = {"model_list": [{"model_name": n, "litellm_params": {"model": "local/bm25"}} for n in ("a", "b")],
           "router_settings": {"model_group_alias": {"a": "b"}}}
    with pytest.raises(ConfigError, match="model_group_alias.a: 'a' is already a model_name in the model_list"):
        parse_config(raw, {})


@pytest.mark.parametrize(("router_settings", "litellm_settings", "expected"), [
    ({}, {}, 2),
    ({}, {"num_retries": 5}, 5),
    ({"num_retries": 0}, {"num_retries": 5}, 0),
    ({"num_retries": 1}, {}, 1),
])
def test_num_retries_router_settings_first_then_litellm_settings_then_two(router_settings, litellm_settings,
                                                                         expected):
    raw = {"router_settings": router_settings, "litellm_settings": litellm_settings}
    assert parse_config(raw, {}).router.num_retries == expected


def test_fallbacks_in_litellm_form_merge_and_deduplicate():
    assert parse_fallbacks([{"a": ["b", "c"]}, {"a": ["c", "d"], "x": "y"}]) == {"a": ("b", "c", "d"), "x": ("y",)}


def test_backoff_doubles_with_jitter_is_capped_and_honours_retry_after_up_to_the_cap():
    policy = RetryPolicy(retry_after=0.1, max_retry_after=0.5)
    rng = Random(3)
    for retry, (low, high) in enumerate([(0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.25, 0.5), (0.25, 0.5)]):
        waits = [policy.wait(retry, None, rng) for _ in range(50)]
        assert low <= min(waits) and max(waits) <= high and len(set(waits)) > 1
    assert policy.wait(0, 0.3, rng) >= 0.3
    assert policy.wait(0, 30, rng) == 0.5
    assert policy.attempts_for(1) == 3 and policy.attempts_for(5) == 5
    with pytest.raises(ValueError):
        RetryPolicy(num_retries=-1)


async def test_cooldown_after_allowed_fails_within_a_minute():
    state = LocalState()
    cooldowns = Cooldowns(state, CooldownPolicy(allowed_fails=3, cooldown_time=5))
    down = UpstreamUnavailableError("503")
    assert await cooldowns.failed("d", down, 100) == 0
    assert await cooldowns.failed("d", down, 130) == 0
    assert await cooldowns.failed("d", down, 170) == 0  # the first failure is more than a minute old
    assert await cooldowns.failed("d", down, 171) == 0
    assert await cooldowns.failed("d", down, 172) == 177
    assert state.cooled_until("d") == 177


async def test_rate_limits_and_refused_credentials_cool_at_once_and_retry_after_lengthens_the_cooldown():
    state = LocalState()
    cooldowns = Cooldowns(state, CooldownPolicy(allowed_fails=3, cooldown_time=5, max_cooldown_time=60))
    assert await cooldowns.failed("a", UpstreamRateLimitError("429"), 0) == 5
    assert await cooldowns.failed("b", UpstreamRateLimitError("429", retry_after=20), 0) == 20
    assert await cooldowns.failed("c", UpstreamRateLimitError("429", retry_after=3600), 0) == 60
    assert await cooldowns.failed("d", UpstreamAuthError("401"), 0) == 5


async def test_the_callers_own_errors_never_cool_a_deployment():
    state = LocalState()
    cooldowns = Cooldowns(state, CooldownPolicy(allowed_fails=1))
    assert await cooldowns.failed("d", UpstreamRejectedError("400"), 0) == 0
    assert await cooldowns.failed("d", InvalidRequestError("bad"), 0) == 0
    assert state.cooled_until("d") == 0


def test_the_routing_pages_example_is_a_valid_config():
    section = (Path(__file__).resolve().parents[1] / "docs" / "routing.md").read_text()
    example = section[section.index("```yaml") + len("```yaml"):]
    example = example[:example.index("```")]
    settings = parse_config(yaml.safe_load(example), {})
    router = settings.router
    assert (router.routing_strategy, router.timeout, router.max_cooldown_time) == ("simple-shuffle", 30, 60)
    assert [d.params.get("order") for d in settings.aliases["rerank"]] == [1, 1, 2]
    assert settings.redis_url == "redis://redis:6379/0"
