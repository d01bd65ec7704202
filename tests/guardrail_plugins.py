"""Custom guardrail classes the tests load by import path (`custom: tests.guardrail_plugins:<Class>`)."""

from __future__ import annotations

import asyncio

from proxy.guardrails import Decision, GuardContext


class ShoutingBlocker:
    """Sync: blocks queries written in capitals; counts how often it was asked."""

    def __init__(self, *, min_letters: int = 5) -> None:
        self.min_letters = min_letters

    def check(self, query: str, context: GuardContext) -> Decision:
        letters = [c for c in query if c.isalpha()]
        if len(letters) >= self.min_letters and all(c.isupper() for c in letters):
            return Decision("block", reason="please do not shout")
        return Decision("allow")


class TeamTagger:
    """Async, returns a dict: prefixes the query with the caller's team from the request metadata."""

    async def check(self, query: str, context: GuardContext) -> dict:
        await asyncio.sleep(0)
        team = context.metadata.get("team")
        if not team:
            return {"action": "allow"}
        return {"action": "mask", "query": f"[{team}] {query}"}


class Broken:
    """Raises on every query (for on_error)."""

    def check(self, query: str, context: GuardContext) -> Decision:
        raise RuntimeError(f"cannot handle {query}")
