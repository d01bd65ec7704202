"""HuggingFace TEI: URL rule, optional key, the bare-list answer, top_n applied by us, pass-through."""

from __future__ import annotations

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.base import ranked
from tests.fakes.huggingface import FakeHuggingFace


@pytest.fixture(scope="module")
def fake():
    fake = FakeHuggingFace().start()
    yield fake
    fake.stop()


@pytest.fixture
def tei(fake):
    fake.reset()
    fake.api_key = "test-key"
    return fake


@pytest.mark.parametrize(("api_base", "url"), [
    ("http://tei:8080", "http://tei:8080/rerank"),
    ("http://tei:8080/", "http://tei:8080/rerank"),
    ("http://gw/tei/rerank", "http://gw/tei/rerank"),
])
def test_rerank_is_appended_unless_present(api_base, url):
    deployment = resolve_deployment("huggingface/bge", {"api_base": api_base}, environ={})
    assert deployment.provider.build(make_request("q", ["a"]), deployment).url == url


def test_base_comes_from_the_environment_and_is_required():
    deployment = resolve_deployment("huggingface/bge", {}, environ={"HUGGINGFACE_API_BASE": "http://h"})
    assert deployment.provider.build(make_request("q", ["a"]), deployment).url == "http://h/rerank"
    with pytest.raises(proxy.ConfigurationError, match="HF_API_BASE"):
        proxy.rerank("huggingface/bge", "q", ["a"])


def test_without_a_key_no_authorization_header_is_sent(tei):
    tei.api_key = None
    response = proxy.rerank("huggingface/bge", CAPITAL_QUERY, CAPITALS, api_base=tei.url)
    assert "authorization" not in tei.last.headers
    assert response.results


def test_top_n_is_applied_by_us_because_tei_ignores_it(tei):
    response = proxy.rerank("huggingface/bge", CAPITAL_QUERY, CAPITALS, top_n=2, api_base=tei.url,
                            api_key=tei.api_key)
    assert "top_n" not in tei.last.body
    assert [(r.index, r.relevance_score) for r in response.results] == ranked(CAPITAL_QUERY, CAPITALS, 2)


def test_truncate_is_passed_through_per_request(tei):
    proxy.rerank("huggingface/bge", CAPITAL_QUERY, CAPITALS, api_base=tei.url, api_key=tei.api_key,
                 provider_params={"truncate": True, "truncation_direction": "Left"})
    assert tei.last.body["truncate"] is True
    assert tei.last.body["truncation_direction"] == "Left"


def test_error_bodies_give_their_message(tei):
    tei.fail_next("422")
    with pytest.raises(proxy.UpstreamRejectedError, match="HTTP 422: scripted failure 422"):
        proxy.rerank("huggingface/bge", CAPITAL_QUERY, CAPITALS, api_base=tei.url, api_key=tei.api_key)


def test_a_json_object_instead_of_the_list_is_malformed():
    deployment = resolve_deployment("huggingface/bge", {"api_base": "http://h"}, environ={})
    with pytest.raises(proxy.UpstreamMalformedError):
        deployment.provider.parse({"results": []}, make_request("q", ["a"]))
