"""Together AI rerank (`together_ai/…`): Cohere-like `results` plus OpenAI-style `usage`, billed per token.

LlamaRank takes object documents with `rank_fields`, so those are sent as given; plain documents go as text.
"""

from __future__ import annotations

from .families import ResultsFamily


class TogetherAI(ResultsFamily):
    name = "together_ai"
    api_key_env = ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY")
    default_api_base = "https://api.together.ai/v1"
    sends_return_documents = True
    accepts_objects = True
