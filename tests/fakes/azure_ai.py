"""Fake Cohere on Azure AI: Cohere's v1/v2 API (see `cohere.py`), also at Foundry's route
`/providers/cohere/v2/rerank` (v2)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .cohere import FakeCohere


class FakeAzureAI(FakeCohere):
    provider = "azure_ai"

    def route_paths(self) -> list[str]:
        return [*super().route_paths(), "/providers/cohere/v2/rerank"]

    def answer(self, path: str, body: Any, request: Request) -> Response:
        return super().answer("/v2/rerank" if path.endswith("/v2/rerank") else path, body, request)
