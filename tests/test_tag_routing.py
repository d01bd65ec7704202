"""LiteLLM's tag-based routing (`router_settings.enable_tag_filtering`) through the running server, the SDK
router, and a config reload: tagged requests reach only matching deployments, `default` ones take the rest,
a tag nothing carries is LiteLLM's 401, fallbacks are narrowed by the same tags, and it is off by default."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import yaml

from proxy import Router
from proxy.app import create_app
from proxy.errors import TagRoutingError
from proxy.settings import load_settings
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.server import LiveServer
from tests.routing_support import cohere_deployment as deployment
from tests.serving import MASTER_KEY, admin, config_for, running_proxy

BODY = {"query": CAPITAL_QUERY, "documents": CAPITALS}
ROUNDS = 12  # random picks over 2-3 deployments: all alike by chance with probability < 0.001


def model_list(a: str, b: str, c: str) -> list[dict]:
    return [
        deployment("tiers", "free-a", a, tags=["free"]),
        deployment("tiers", "paid-b", b, tags=["paid", "eu"]),
        deployment("tiers", "default-c", c, tags=["default"]),
        deployment("nodefault", "nd-free", a, tags=["free"]),
        deployment("nodefault", "nd-plain", b),
        deployment("freeonly", "fo-free", a, tags=["free"]),
    ]


@pytest.fixture(scope="module")
def proxy_url(held_upstreams, tmp_path_factory):
    a, b, c = (fake.url for fake in held_upstreams)
    config = config_for(None, f"sqlite:///{tmp_path_factory.mktemp('db') / 'spend.db'}",
                        model_list=model_list(a, b, c),
                        router_settings={"enable_tag_filtering": True, "retry_after": 0.001,
                                         "fallbacks": [{"freeonly": ["tiers"]}]})
    with running_proxy(config) as server:
        yield server.url


def post(url: str, key: str = MASTER_KEY, headers: dict | None = None, **body) -> httpx.Response:
    return httpx.post(url + "/v2/rerank", json={**BODY, **body}, timeout=30,
                      headers={"Authorization": f"Bearer {key}", **(headers or {})})


def served_by(url: str, rounds: int = ROUNDS, key: str = MASTER_KEY, headers: dict | None = None,
              **body) -> Counter[str]:
    """Deployment id → answers, over `rounds` requests that must all succeed."""
    seen: Counter[str] = Counter()
    for _ in range(rounds):
        response = post(url, key, headers, **body)
        assert response.status_code == 200, response.text
        seen[response.headers["x-model-deployment"]] += 1
    return seen


def test_body_and_header_tags_reach_only_the_matching_deployments(proxy_url, a, b, c):
    assert set(served_by(proxy_url, model="tiers", metadata={"tags": ["paid"]})) == {"paid-b"}
    assert set(served_by(proxy_url, model="tiers", headers={"x-litellm-tags": "free, unknown"})) == {"free-a"}
    # any one tag in common is enough (LiteLLM's default tag_filtering_match_any: true)
    assert set(served_by(proxy_url, model="tiers", metadata={"tags": ["free", "paid"]})) == {"free-a", "paid-b"}
    assert a.requests and b.requests  # the answers really came from those upstreams


def test_untagged_and_unmatched_requests_go_to_the_default_deployment(proxy_url, c):
    assert set(served_by(proxy_url, model="tiers")) == {"default-c"}
    assert set(served_by(proxy_url, model="tiers", metadata={"tags": ["gold"]})) == {"default-c"}
    assert len(c.requests) == 2 * ROUNDS


def test_without_a_default_untagged_requests_use_every_deployment_and_unmatched_ones_get_401(proxy_url, a):
    assert set(served_by(proxy_url, model="nodefault")) == {"nd-free", "nd-plain"}
    before = len(a.requests)
    response = post(proxy_url, headers={"x-litellm-tags": "silver"}, model="nodefault", metadata={"tags": ["gold"]})
    assert response.status_code == 401
    assert response.json() == {"message": "Not allowed to access model due to tags configuration. "
                                          "Passed model=nodefault and tags=['gold', 'silver']"}
    assert len(a.requests) == before


def test_a_keys_tags_route_its_requests(proxy_url):
    with admin(proxy_url) as client:
        key = client.post("/key/generate", json={"tags": ["paid"]}).json()["key"]
    assert set(served_by(proxy_url, key=key, model="tiers")) == {"paid-b"}
    assert set(served_by(proxy_url, key=key, model="tiers", metadata={"tags": ["free"]})) == {"free-a", "paid-b"}


def test_fallbacks_are_narrowed_by_the_same_tags(proxy_url):
    response = post(proxy_url, model="freeonly", metadata={"tags": ["paid"]})
    assert response.status_code == 200
    assert response.headers["x-model-deployment"] == "paid-b" and response.headers["x-fallback-used"] == "true"
    # the fallback's own default deployment serves a tag nothing in the chain carries
    unmatched = served_by(proxy_url, model="freeonly", metadata={"tags": ["gold"]})
    assert set(unmatched) == {"default-c"}


def test_tags_route_nowhere_special_when_tag_filtering_is_off(held_upstreams, tmp_path):
    a, b, c = (fake.url for fake in held_upstreams)
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=model_list(a, b, c))
    with running_proxy(config) as server:
        seen = served_by(server.url, rounds=3 * ROUNDS, model="tiers", metadata={"tags": ["paid"]})
        assert set(seen) == {"free-a", "paid-b", "default-c"}
        tagged = served_by(server.url, model="nodefault", headers={"x-litellm-tags": "gold"})
        assert set(tagged) == {"nd-free", "nd-plain"}


def test_a_config_reload_turns_tag_filtering_on_and_off_and_sets_match_all(held_upstreams, tmp_path, test_db_url):
    a, b, c = (fake.url for fake in held_upstreams)
    path = tmp_path / "config.yaml"
    config = config_for(None, test_db_url, model_list=model_list(a, b, c))
    path.write_text(yaml.safe_dump(config))
    with LiveServer(create_app(load_settings(path, {})), lifespan="on") as server, admin(server.url) as client:
        assert len(served_by(server.url, rounds=3 * ROUNDS, model="tiers", metadata={"tags": ["paid"]})) == 3
        config["router_settings"] = {"enable_tag_filtering": True, "tag_filtering_match_any": False}
        path.write_text(yaml.safe_dump(config))
        reloaded = client.post("/config/reload")
        assert reloaded.status_code == 200 and reloaded.json()["restart_required"] == []
        assert set(served_by(server.url, model="tiers", metadata={"tags": ["paid", "eu"]})) == {"paid-b"}
        # every tag needed: nothing carries both, and tags the alias knows are never sent to `default`
        both = post(server.url, model="tiers", metadata={"tags": ["paid", "free"]})
        assert both.status_code == 401 and "tags=['paid', 'free']" in both.json()["message"]
        assert set(served_by(server.url, model="tiers", metadata={"tags": ["gold"]})) == {"default-c"}
        config["router_settings"] = {}
        path.write_text(yaml.safe_dump(config))
        assert client.post("/config/reload").json()["restart_required"] == []
        assert len(served_by(server.url, rounds=3 * ROUNDS, model="tiers", metadata={"tags": ["paid"]})) == 3


def test_sdk_router_metadata_tags_with_litellms_exclude_and_require_markers(held_upstreams):
    a, b, c = (fake.url for fake in held_upstreams)
    router = Router(model_list=model_list(a, b, c), enable_tag_filtering=True, seed=7, clock=lambda: 100.0)
    try:
        def picks(model: str, *tags: str) -> set[str]:
            return {router.rerank(model, CAPITAL_QUERY, CAPITALS, metadata={"tags": list(tags)}).deployment
                    for _ in range(ROUNDS)}

        assert picks("tiers", "paid") == {"paid-b"}
        assert picks("tiers", "&eu") == {"paid-b"}                   # `&`: must carry it
        assert picks("tiers", "!free") == {"default-c"}              # `!` alone: the default pool minus it
        assert picks("nodefault", "!free") == {"nd-plain"}           # no default: every deployment minus it
        assert picks("tiers", "free", "paid", "!eu") == {"free-a"}
        with pytest.raises(TagRoutingError) as refused:              # `paid` exists here, but not without `eu`
            router.rerank("tiers", CAPITAL_QUERY, CAPITALS, metadata={"tags": ["paid", "!eu"]})
        assert refused.value.status == 401 and "tags=['paid', '!eu']" in refused.value.message
        with pytest.raises(TagRoutingError):
            router.rerank("tiers", CAPITAL_QUERY, CAPITALS, metadata={"tags": ["&gold"]})
        router.state.cool("paid-b", 160.0, 100.0)  # the one matching deployment cooling: tried, not `default`
        assert picks("tiers", "paid") == {"paid-b"}
    finally:
        router.close()


def test_a_cached_answer_serves_only_requests_whose_tags_reach_the_same_deployments(held_upstreams, tmp_path, a, b):
    """With the result cache on, a whole answer is kept per set of deployments the tags reach: other tags may
    reach another model, and tags that reach none get LiteLLM's 401, never a cached answer."""
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}",
                        model_list=[deployment("cached", "c-free", held_upstreams[0].url, tags=["free"]),
                                    deployment("cached", "c-paid", held_upstreams[1].url, tags=["paid"])],
                        router_settings={"enable_tag_filtering": True},
                        litellm_settings={"cache": True, "cache_params": {"type": "local"}})
    with running_proxy(config) as server:
        free = [post(server.url, model="cached", metadata={"tags": ["free"]}) for _ in range(2)]
        assert [r.headers["x-cache"] for r in free] == ["miss", "hit"] and len(a.requests) == 1
        paid = post(server.url, model="cached", metadata={"tags": ["paid"]})
        assert paid.status_code == 200 and paid.headers["x-cache"] != "hit" and len(b.requests) == 1
        nowhere = post(server.url, model="cached", metadata={"tags": ["gold"]})
        assert nowhere.status_code == 401, nowhere.text
        assert "tags configuration" in nowhere.json()["message"]
