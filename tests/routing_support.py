"""Shared by the routing tests: LiteLLM model_list entries for a fake Cohere, and a manual clock.

The held fakes themselves (`held_upstreams`, `a`, `b`, `c`) are fixtures in conftest.py.
"""

from __future__ import annotations

from typing import Any


def cohere_deployment(alias: str, dep_id: str, base: str, model: str = "rerank-english-v3.0",
                      **params: Any) -> dict[str, Any]:
    """One model_list entry: alias `alias`, deployment id `dep_id`, calling the fake Cohere at `base`."""
    return {"model_name": alias, "model_info": {"id": dep_id},
            "litellm_params": {"model": f"cohere/{model}", "api_key": "test-key", "api_base": base, **params}}


class Clock:
    """Wall-clock seconds that move only when told to (a router's `clock`)."""

    def __init__(self, now: float = 1_000_020.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
