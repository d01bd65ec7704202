"""The one provider registry: config validation, the SDK's `provider/model` parsing and the tests read it.

Adding a provider means writing its file and adding one line to `_PROVIDERS`.
"""

from __future__ import annotations

from ..errors import ModelNotFoundError
from .azure_ai import AzureAI
from .base import Deployment, Provider, ProviderResult, Scored, UpstreamRequest, UpstreamResponse, Usage
from .bedrock import Bedrock
from .cohere import Cohere
from .deepinfra import DeepInfra
from .fireworks_ai import FireworksAI
from .hosted_vllm import HostedVLLM
from .huggingface import HuggingFace
from .infinity import Infinity
from .jina_ai import JinaAI
from .local import Local
from .nvidia_nim import NvidiaNim
from .together_ai import TogetherAI
from .vertex_ai import VertexAI
from .voyage import Voyage

_PROVIDERS: tuple[Provider, ...] = (
    AzureAI(),
    Bedrock(),
    Cohere(),
    DeepInfra(),
    FireworksAI(),
    HostedVLLM(),
    HuggingFace(),
    Infinity(),
    JinaAI(),
    Local(),
    NvidiaNim(),
    TogetherAI(),
    VertexAI(),
    Voyage(),
)

REGISTRY: dict[str, Provider] = {}
for _provider in _PROVIDERS:
    for _name in (_provider.name, *_provider.aliases):
        REGISTRY[_name] = _provider


def split_model(model: str) -> tuple[Provider, str]:
    """`"cohere/rerank-v3.5"` → (Cohere provider, `"rerank-v3.5"`)."""
    prefix, sep, rest = model.partition("/")
    provider = REGISTRY.get(prefix) if sep else None
    if provider is None:
        known = ", ".join(sorted(REGISTRY))
        raise ModelNotFoundError(
            f"unknown provider in model '{model}': write it as '<provider>/<model>' with a provider among: {known}"
        )
    return provider, rest


__all__ = ["REGISTRY", "Deployment", "Provider", "ProviderResult", "Scored", "UpstreamRequest",
           "UpstreamResponse", "Usage", "split_model"]
