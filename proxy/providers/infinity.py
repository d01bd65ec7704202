"""Infinity (`infinity/…`), a self-hosted embedding and rerank server: `POST {api_base}/rerank`.

Needs an `api_base`; a key only when the server was started with one. Documents go as strings.
"""

from __future__ import annotations

from .families import ResultsFamily


class Infinity(ResultsFamily):
    name = "infinity"
    api_key_env = ("INFINITY_API_KEY",)
    api_base_env = ("INFINITY_API_BASE",)
    requires_api_key = False
    requires_api_base = True
    sends_return_documents = True
    options = ("raw_scores",)
