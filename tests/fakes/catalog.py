"""Every registered HTTP provider's contract case: its fake, a model, deployment params, and the exact
upstream request it must send. `tests/test_contract.py` runs the same suite over all of them; a
provider in the registry without a case here fails that suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import bedrock, deepinfra, huggingface, nvidia_nim, vertex_ai
from .azure_ai import FakeAzureAI
from .base import FakeUpstream, Recorded
from .cohere import FakeCohere
from .fireworks_ai import FakeFireworksAI
from .hosted_vllm import FakeHostedVLLM
from .infinity import FakeInfinity
from .jina_ai import FakeJinaAI
from .together_ai import FakeTogetherAI
from .voyage import FakeVoyage


@dataclass
class ProviderCase:
    fake: type[FakeUpstream]
    model: str
    """Full model string, e.g. `cohere/rerank-v3.5`; a priced model when the provider has prices."""
    params: Callable[[FakeUpstream], dict[str, Any]]
    """Deployment params (`api_key`, `api_base`, ...) pointing at a running fake."""
    expected: Callable[[FakeUpstream, str, list[str], int | None], tuple[str, Any]]
    """(path, JSON body) the provider must send for (query, string documents, top_n)."""
    check_headers: Callable[[Recorded, FakeUpstream], None] = lambda rec, fake: None
    priced: bool = True
    """The built-in price table has a non-zero price for `model`."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment the SDK call needs (e.g. AWS credentials for signing)."""


def _bearer(rec: Recorded, fake: FakeUpstream) -> None:
    assert rec.headers["authorization"] == f"Bearer {fake.api_key}"


def _cohere_expected(fake, query, documents, top_n):
    body = {"model": "rerank-v3.5", "query": query, "documents": documents}
    if top_n is not None:
        body["top_n"] = top_n
    return "/v2/rerank", body


def _expect(path: str, model: str, top_field: str = "top_n", **fixed: Any):
    """`expected` for a Cohere-like body: model, query, documents, `top_field` when set, then `fixed`."""
    def expected(fake, query, documents, top_n):
        body = {"model": model, "query": query, "documents": documents, **fixed}
        if top_n is not None:
            body[top_field] = top_n
        return path, body
    return expected


def _base(fake: FakeUpstream) -> dict[str, Any]:
    return {"api_key": fake.api_key, "api_base": fake.url}


CASES: dict[str, ProviderCase] = {
    "azure_ai": ProviderCase(FakeAzureAI, "azure_ai/cohere-rerank-v4.0-fast", _base,
                             _expect("/v1/rerank", "cohere-rerank-v4.0-fast"), _bearer),
    "cohere": ProviderCase(
        fake=FakeCohere,
        model="cohere/rerank-v3.5",
        params=lambda fake: {"api_key": fake.api_key, "api_base": fake.url},
        expected=_cohere_expected,
        check_headers=_bearer,
    ),
    "fireworks_ai": ProviderCase(
        FakeFireworksAI, "fireworks_ai/accounts/fireworks/models/qwen3-reranker-8b", _base,
        _expect("/inference/v1/rerank", "accounts/fireworks/models/qwen3-reranker-8b",
                return_documents=False), _bearer),
    "hosted_vllm": ProviderCase(FakeHostedVLLM, "hosted_vllm/BAAI/bge-reranker-v2-m3", _base,
                                _expect("/rerank", "BAAI/bge-reranker-v2-m3"), _bearer, priced=False),
    "infinity": ProviderCase(
        FakeInfinity, "infinity/mixedbread-ai/mxbai-rerank-xsmall-v1", _base,
        _expect("/rerank", "mixedbread-ai/mxbai-rerank-xsmall-v1", return_documents=False), _bearer,
        priced=False),
    "jina_ai": ProviderCase(
        FakeJinaAI, "jina_ai/jina-reranker-v2-base-multilingual", _base,
        _expect("/v1/rerank", "jina-reranker-v2-base-multilingual", return_documents=False), _bearer),
    "together_ai": ProviderCase(
        FakeTogetherAI, "together_ai/Salesforce/Llama-Rank-V1",
        lambda f: {**_base(f), "api_base": f"{f.url}/v1"},
        _expect("/v1/rerank", "Salesforce/Llama-Rank-V1", return_documents=False), _bearer),
    "voyage": ProviderCase(FakeVoyage, "voyage/rerank-2.5", _base,
                           _expect("/v1/rerank", "rerank-2.5", "top_k", return_documents=False), _bearer),
    "bedrock": ProviderCase(
        fake=bedrock.FakeBedrock, model="bedrock/amazon.rerank-v1:0", env=bedrock.ENV,
        params=lambda fake: {"api_base": fake.url}, expected=bedrock.expected,
        check_headers=bedrock.check_headers),
    "vertex_ai": ProviderCase(
        fake=vertex_ai.FakeVertexAI, model="vertex_ai/semantic-ranker-default@latest",
        params=vertex_ai.params, expected=vertex_ai.expected, check_headers=vertex_ai.check_headers),
    "huggingface": ProviderCase(
        fake=huggingface.FakeHuggingFace, model="huggingface/BAAI/bge-reranker-base", priced=False,
        params=lambda fake: {"api_key": fake.api_key, "api_base": fake.url},
        expected=huggingface.expected, check_headers=_bearer),
    "deepinfra": ProviderCase(
        fake=deepinfra.FakeDeepInfra, model="deepinfra/Qwen/Qwen3-Reranker-8B",
        params=lambda fake: {"api_key": fake.api_key, "api_base": fake.url},
        expected=deepinfra.expected, check_headers=_bearer),
    "nvidia_nim": ProviderCase(
        fake=nvidia_nim.FakeNvidiaNim, model="nvidia_nim/nvidia/llama-3_2-nv-rerankqa-1b-v2", priced=False,
        params=lambda fake: {"api_key": fake.api_key, "api_base": fake.url},
        expected=nvidia_nim.expected, check_headers=_bearer),
}
