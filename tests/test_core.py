"""Pure parts of the core: request validation, normalisation, pricing, the local ranker, the public API."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.normalise import check_scores, normalise
from proxy.pricing import cost, price_for
from proxy.providers import REGISTRY, ProviderResult, Scored, Usage, split_model
from proxy.providers.base import scored
from proxy.request import make_request
from tests.conftest import CAPITAL_QUERY, CAPITALS


def test_public_names_are_pinned():
    assert set(proxy.__all__) == {
        "AllDeploymentsFailedError", "AuthenticationError", "Cache", "ClientError", "ConfigurationError",
        "GuardrailBlockedError", "InvalidRequestError", "MissingExtraError", "ModelNotFoundError", "NotFoundError",
        "PermissionDeniedError", "ProxyError", "RateLimitError", "RerankResponse", "RerankResult", "Router",
        "UpstreamAuthError", "UpstreamError", "UpstreamMalformedError", "UpstreamRateLimitError",
        "UpstreamRejectedError", "UpstreamTimeoutError", "UpstreamUnavailableError", "arerank", "cache",
        "rerank",
    } | set(getattr(proxy, "_LATER_EXPORTS", ()))
    for name in proxy.__all__:
        assert hasattr(proxy, name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "  "}, "query must not be empty"),
        ({"documents": []}, "documents must not be empty"),
        ({"top_n": 0}, "top_n must be a positive integer"),
        ({"rank_fields": []}, "rank_fields cannot be empty"),
        ({"documents": [{"title": "x"}], "rank_fields": ["body"]}, "rank_field 'body' is missing"),
        ({"documents": [{"title": "x"}]}, "without a 'text' string"),
        ({"documents": ["d"] * 10_001}, "too many documents"),
        ({"documents": ["d"] * 2000, "max_chunks_per_doc": 5}, "must be less than 10000"),
        ({"documents": ["d", 3]}, "documents[1] must be a string or an object"),
    ],
)
def test_invalid_requests_are_refused_before_any_call(kwargs, message):
    args = {"query": CAPITAL_QUERY, "documents": CAPITALS, **kwargs}
    with pytest.raises(proxy.InvalidRequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_request(args.pop("query"), args.pop("documents"), **args)


def test_sdk_refuses_invalid_input_with_status_400():
    with pytest.raises(proxy.InvalidRequestError) as caught:
        proxy.rerank("local/bm25", "", CAPITALS)
    assert caught.value.status == 400


def test_unknown_provider_names_the_known_ones():
    with pytest.raises(proxy.ModelNotFoundError, match="cohere") as caught:
        split_model("nosuch/model")
    assert caught.value.status == 404


def test_normalise_sorts_breaks_ties_by_index_applies_top_n_and_echoes_documents():
    request = make_request("q", ["a", {"text": "b", "id": 7}, "c", "d"], top_n=3, return_documents=True,
                           api_version=1)
    result = ProviderResult([Scored(3, 0.2), Scored(0, 0.9), Scored(1, 0.5), Scored(2, 0.5)], Usage())
    response = normalise(request, result).to_response()
    assert [(r.index, r.relevance_score) for r in response.results] == [(0, 0.9), (1, 0.5), (2, 0.5)]
    assert response.results[1].document.model_dump(exclude_none=True) == {"text": "b", "id": 7}
    assert response.meta.billed_units.search_units == 1
    assert response.meta.api_version.version == "1"


@pytest.mark.parametrize("seed", range(20))
def test_normalise_orders_by_score_then_index_whatever_the_upstream_order(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    values = [rng.choice([0.1, 0.5, 0.9]) if seed % 2 else rng.random() for _ in range(n)]  # odd seeds: ties
    indices = list(range(n))
    rng.shuffle(indices)
    result = ProviderResult([Scored(i, values[i]) for i in indices], Usage())
    payload = normalise(make_request("q", ["d"] * n), result).payload
    expected = sorted(range(n), key=lambda i: (-values[i], i))
    assert [r["index"] for r in payload["results"]] == expected


def test_scores_are_read_as_int_indices_and_float_scores():
    built = scored([0, "2", 1.0], [1, "0.5", 0.25])
    assert built == [Scored(0, 1.0), Scored(2, 0.5), Scored(1, 0.25)]
    assert {type(s.index) for s in built} == {int} and {type(s.score) for s in built} == {float}
    assert scored([3], [0.5]) == [Scored(3, 0.5)]
    with pytest.raises(ValueError):
        scored(["x"], [0.1])
    with pytest.raises(TypeError):
        scored([0], [None])


def test_invariants_reject_out_of_range_repeated_and_non_finite():
    request = make_request("q", ["a", "b"])
    for scores in ([Scored(2, 0.1)], [Scored(0, 0.1), Scored(0, 0.2)], [Scored(0, math.nan)]):
        with pytest.raises(proxy.UpstreamMalformedError):
            check_scores(ProviderResult(scores), request, "x")


def deployment(model, **params):
    return resolve_deployment(model, {"api_key": "k", "api_base": "http://x", **params}, environ={})


@pytest.mark.parametrize(
    ("model", "usage", "n_docs", "expected"),
    [
        ("cohere/rerank-english-v3.0", Usage(search_units=1), 4, Decimal("0.002")),
        ("cohere/rerank-v4.0-pro", Usage(), 250, Decimal("0.0075")),  # 3 search units of 100 documents
        ("cohere/rerank-v5.0-pro", Usage(total_tokens=1000), 4, Decimal("0.00005")),
        ("cohere/unknown-model", Usage(search_units=1), 4, Decimal(0)),
    ],
)
def test_cost_by_search_unit_or_token(model, usage, n_docs, expected):
    request = make_request("q", ["doc"] * n_docs)
    assert cost(usage, request, price_for(deployment(model))) == expected


def test_per_token_model_without_reported_tokens_is_estimated_not_free():
    request = make_request("a query of some words", ["a document of a few words"] * 10)
    assert cost(Usage(), request, price_for(deployment("cohere/rerank-v5.0-fast"))) > 0


def test_deployment_prices_override_the_table():
    request = make_request("q", ["doc"])
    dep = deployment("cohere/rerank-v3.5", input_cost_per_query=0.5, input_cost_per_token=0.001)
    assert cost(Usage(search_units=2, total_tokens=10), request, price_for(dep)) == Decimal("1.010")


def test_every_model_in_the_price_table_belongs_to_a_registered_provider_or_a_later_one():
    from proxy.pricing import PRICES

    assert {"cohere"} <= {provider for provider, _ in PRICES} and "cohere" in REGISTRY


JUDGED = [
    ("capital of the United States", CAPITALS, 2),
    ("How do I reset my password?", [
        "Our office is open Monday to Friday.",
        "To reset your password, open Settings, choose Security and click Reset password.",
        "Passwords must be at least twelve characters long.",
    ], 1),
    ("python list sort descending", [
        "Use sorted(items, reverse=True) to sort a Python list in descending order.",
        "Snakes such as the python are found in Africa and Asia.",
        "A list of the best hiking trails in Colorado.",
    ], 0),
]


@pytest.mark.parametrize(("query", "documents", "best"), JUDGED)
def test_local_ranker_puts_the_relevant_document_first(query, documents, best):
    resp = proxy.rerank("local/bm25", query, documents)
    assert resp.results[0].index == best
    assert all(0 <= r.relevance_score <= 1 for r in resp.results)
    assert resp.cost == 0


async def test_local_ranker_async_offline():
    resp = await proxy.arerank("local/bm25", CAPITAL_QUERY, CAPITALS, top_n=2, return_documents=False)
    assert [r.index for r in resp.results][:1] == [2] and resp.results[0].document is None
