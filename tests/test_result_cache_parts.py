"""The result cache's parts without a server: the byte-bounded LRU, TTLs on an injected clock, decoding,
and the config's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.cache import CacheParams, LocalStore, ResultCache
from proxy.cache.stores import ENTRY_OVERHEAD
from proxy.errors import InvalidRequestError
from proxy.settings import ConfigError, parse_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_local_store_is_bounded_in_bytes_and_evicts_the_least_recently_used():
    entry = 10 + 90 + ENTRY_OVERHEAD
    store = LocalStore(max_bytes=entry * 3)
    for name in ("a", "b", "c"):
        store.put_many([(name * 10, b"x" * 90)], ttl=60)
    assert store.get_now(["a" * 10]) == [b"x" * 90]  # a is now the most recently used
    store.put_many([("d" * 10, b"x" * 90)], ttl=60)
    assert store.get_now(["a" * 10, "b" * 10, "c" * 10, "d" * 10]) == [b"x" * 90, None, b"x" * 90, b"x" * 90]
    assert store.size == entry * 3 and len(store) == 3
    store.put_many([("huge", b"x" * entry * 4)], ttl=60)  # larger than the whole cache: not stored
    assert len(store) == 3


def test_local_entries_expire_after_their_ttl():
    clock = Clock()
    store = LocalStore(max_bytes=10_000, clock=clock)
    store.put_many([("short", b"1")], ttl=5)
    store.put_many([("long", b"2")], ttl=600)
    clock.now += 5
    assert store.get_now(["short", "long"]) == [None, b"2"]
    assert len(store) == 1 and store.size == len("long") + 1 + ENTRY_OVERHEAD


def make_cache(**kwargs: Any) -> ResultCache:
    return ResultCache(LocalStore(1 << 20), **kwargs)


def test_request_controls_narrow_what_a_request_reads_and_writes():
    cache = make_cache(ttl=100)
    use = cache.use_for(None, None, {"no-cache": True, "ttl": 7}, None)
    assert use is not None and (use.read, use.write, use.ttl) == (False, True, 7.0)
    use = cache.use_for(None, None, None, "max-age=0, no-store")
    assert use is not None and (use.read, use.write) == (True, False)
    assert cache.use_for(None, None, {"no-cache": True}, "no-store") is None
    assert cache.use_for("abc", {"cache": False}, None, None) is None
    use = cache.use_for("abc", {"cache": {"no-store": True}}, None, None)
    assert use is not None and not use.write


@pytest.mark.parametrize(("controls", "named"), [
    ({"s-maxage": 5}, "cache.s-maxage"), ({"no-cache": "yes"}, "cache.no-cache"), ({"ttl": -1}, "cache.ttl"),
    ({"namespace": ""}, "cache.namespace"), ("on", "cache must be an object"),
])
def test_bad_request_controls_are_refused_by_name(controls: Any, named: str):
    with pytest.raises(InvalidRequestError, match=named):
        make_cache().use_for(None, None, controls, None)


def test_scope_and_namespace_separate_entries():
    shared, per_key = make_cache(), make_cache(scope="per_key")
    assert shared.use_for("k1", None, None, None).namespace == shared.use_for("k2", None, None, None).namespace
    assert per_key.use_for("k1", None, None, None).namespace != per_key.use_for("k2", None, None, None).namespace
    assert shared.use_for(None, None, {"namespace": "t1"}, None).namespace != shared.use_for(
        None, None, None, None).namespace


def config(**params: Any) -> dict[str, Any]:
    return {"model_list": [{"model_name": "m", "litellm_params": {"model": "local/bm25"}}],
            "litellm_settings": {"cache": True, "cache_params": params}}


def test_cache_params_are_checked_with_their_yaml_path():
    with pytest.raises(ConfigError, match=r"litellm_settings\.cache_params\.max_size: unknown key"):
        parse_config(config(max_size=5), {})
    with pytest.raises(ConfigError, match=r"litellm_settings\.cache_params\.type"):
        parse_config(config(type="disk"), {})
    with pytest.raises(ConfigError, match="needs a Redis"):
        parse_config(config(type="redis"), {})
    with pytest.raises(ConfigError, match="unknown call type"):
        parse_config(config(supported_call_types=["rerankk"]), {})


def test_the_cache_type_follows_the_servers_redis_when_not_given():
    assert parse_config(config(), {}).cache == CacheParams(type="local")
    assert parse_config(config(), {"REDIS_URL": "redis://r:6379"}).cache.type == "redis"
    assert parse_config(config(supported_call_types=["acompletion"]), {}).cache is None
    off = config()
    off["litellm_settings"]["cache"] = False
    assert parse_config(off, {}).cache is None


def test_cache_scores_must_be_a_boolean():
    entry = config()
    entry["model_list"][0]["litellm_params"]["cache_scores"] = "no"
    with pytest.raises(ConfigError, match="cache_scores must be true or false"):
        parse_config(entry, {})


async def test_a_corrupt_entry_is_a_miss():
    from proxy.cache.keys import answer_key
    from proxy.request import make_request

    cache = make_cache()
    request = make_request("q", ["a", "b"])
    use = cache.use_for(None, None, None, None)
    for broken in (b"no newline", b'["1", "d", 3, 0]\n{"a"}', b"[1]\n{}", b"\xff\n\xff"):
        cache.store.put_many([(answer_key(use.namespace, "m", request), broken)], ttl=60)
        assert await cache.answer("m", request, use) is None


def test_object_documents_orjson_cannot_write_still_get_keys():
    from proxy.cache.keys import answer_key
    from proxy.request import make_request

    wide = make_request("q", [{"text": "a", "n": 2**70}, {"text": "b", "n": 1}])
    assert answer_key("", "m", wide) != answer_key("", "m", make_request("q", [{"text": "a", "n": 1},
                                                                              {"text": "b", "n": 1}]))
