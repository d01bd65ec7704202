"""The contract every HTTP provider in the registry meets, each against its own strict fake upstream."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import proxy
from proxy.providers import REGISTRY
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.catalog import CASES

HTTP_PROVIDERS = sorted({p.name for p in REGISTRY.values() if not p.in_process})


def test_every_registered_provider_has_a_contract_case():
    assert sorted(CASES) == HTTP_PROVIDERS


@pytest.fixture(scope="module", params=HTTP_PROVIDERS)
def case(request):
    case = CASES[request.param]
    fake = case.fake().start()
    yield case, fake
    fake.stop()


@pytest.fixture
def upstream(case, monkeypatch):
    case_, fake = case
    fake.reset()
    for name, value in case_.env.items():
        monkeypatch.setenv(name, value)
    return case_, fake


def call(case, fake, documents=CAPITALS, **kwargs):
    return proxy.rerank(case.model, CAPITAL_QUERY, documents, **case.params(fake), **kwargs)


def assert_invariants(response, documents, top_n=None):
    indices = [r.index for r in response.results]
    assert len(set(indices)) == len(indices)
    assert all(0 <= i < len(documents) for i in indices)
    scores = [r.relevance_score for r in response.results]
    assert all(math.isfinite(s) for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(indices) <= (top_n or len(documents))
    for result in response.results:
        if result.document is not None:
            assert result.document.text == documents[result.index]


@pytest.mark.parametrize("top_n", [None, 2])
def test_happy_path_sends_the_exact_upstream_request(upstream, top_n):
    case, fake = upstream
    response = call(case, fake, top_n=top_n)
    assert_invariants(response, CAPITALS, top_n)
    assert len(response.results) == (top_n or len(CAPITALS))
    assert all(r.document is not None for r in response.results)
    path, body = case.expected(fake, CAPITAL_QUERY, CAPITALS, top_n)
    assert fake.last.path == path
    assert fake.last.body == body
    case.check_headers(fake.last, fake)


def test_billing_reports_usage_and_a_real_cost(upstream):
    case, fake = upstream
    response = call(case, fake)
    billed = response.meta.billed_units
    assert billed.search_units or billed.total_tokens
    if case.priced:
        assert response.cost > 0


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("400", proxy.UpstreamRejectedError, 400),
        ("401", proxy.UpstreamAuthError, 502),
        ("403", proxy.UpstreamAuthError, 502),
        ("429", proxy.UpstreamRateLimitError, 429),
        ("500", proxy.UpstreamUnavailableError, 503),
        ("malformed", proxy.UpstreamMalformedError, 502),
    ],
)
def test_error_table(upstream, fault, error, status):
    case, fake = upstream
    fake.fail_next(fault)
    with pytest.raises(error) as caught:
        call(case, fake)
    assert caught.value.status == status
    assert caught.value.retryable is (status != 400)


def test_timeout_is_504(upstream):
    case, fake = upstream
    fake.fail_next("timeout")
    with pytest.raises(proxy.UpstreamTimeoutError):
        proxy.rerank(case.model, CAPITAL_QUERY, CAPITALS, **{**case.params(fake), "timeout": 0.3})


def test_large_requests_are_split_and_merged(upstream):
    case, fake = upstream
    size = REGISTRY[case.model.split("/")[0]].max_documents_per_call
    if not size:
        pytest.skip("provider takes any number of documents in one call")
    documents = [f"unrelated filler text {i}" for i in range(size * 2 + 7)]
    documents[size + 3] = CAPITALS[2]
    response = call(case, fake, documents=documents, top_n=3)
    assert len(fake.requests) == 3
    assert response.results[0].index == size + 3
    assert_invariants(response, documents, 3)


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted({p.name for p in REGISTRY.values()}))
def test_every_provider_is_documented_and_has_a_config_example(name):
    example = (ROOT / "config.example.yaml").read_text()
    prefix = "local/bm25" if name == "local" else f"`{name}/`"
    for page in ("README.md", "docs/providers.md"):
        assert prefix in (ROOT / page).read_text(), f"{page} has no provider row for {name}"
    assert f"model: {name}/" in example, f"config.example.yaml has no deployment for {name}"
