"""`webhook`: ask an external guardrail service about the query over HTTP.

The contract (documented in docs/guardrails.md):

    POST <api_base>   {"guardrail": name, "query": str, "key_alias": str|null, "user_id": str|null,
                       "end_user": str|null, "model": str, "metadata": {...}}
    200 → {"action": "allow"}
        | {"action": "block", "reason": "shown to the caller; must not quote the query"}
        | {"action": "rewrite", "query": "the query to send instead"}   ("mask" is accepted for "rewrite")

Anything else (timeout, connection error, non-2xx, another body) raises `WebhookError`, and the chain
applies the guardrail's `on_error` (allow = fail open, block = fail closed). The HTTP client is the pooled
one created in the app's lifespan.
"""

from __future__ import annotations

from typing import Any

import httpx

from .contract import ALLOW, Decision, GuardContext

MAX_REASON = 200


class WebhookError(Exception):
    """The guardrail service did not give a usable answer."""


class WebhookGuardrail:
    def __init__(self, *, name: str, api_base: str, api_key: str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 2.0,
                 http: httpx.AsyncClient | None = None) -> None:
        if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http(s) URL")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if headers is not None and not (isinstance(headers, dict)
                                        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())):
            raise ValueError("headers must map names to strings")
        self.name = name
        self.url = api_base
        self.headers = {**(headers or {}), **({"authorization": f"Bearer {api_key}"} if api_key else {})}
        self.timeout = float(timeout)
        self.http = http

    async def check(self, query: str, context: GuardContext) -> Decision:
        if self.http is None:
            raise WebhookError("no HTTP client (the guardrail was not started)")
        payload = {"guardrail": self.name, "query": query, "key_alias": context.key_alias,
                   "user_id": context.user_id, "end_user": context.end_user, "model": context.model,
                   "metadata": context.metadata}
        try:
            response = await self.http.post(self.url, json=payload, headers=self.headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise WebhookError("timed out") from exc
        except httpx.HTTPError as exc:
            raise WebhookError(type(exc).__name__) from exc
        if not response.is_success:
            raise WebhookError(f"HTTP {response.status_code}")
        try:
            answer: Any = response.json()
        except ValueError as exc:
            raise WebhookError("answer is not JSON") from exc
        return parse_answer(answer)


def parse_answer(answer: Any) -> Decision:
    """The service's JSON answer as a Decision; WebhookError when it breaks the contract."""
    action = answer.get("action") if isinstance(answer, dict) else None
    if action == "allow":
        return ALLOW
    if action == "block":
        reason = answer.get("reason")
        reason = reason[:MAX_REASON] if isinstance(reason, str) and reason.strip() else "rejected by the service"
        return Decision("block", reason=reason)
    if action in ("rewrite", "mask"):
        query = answer.get("query")
        if not isinstance(query, str) or not query.strip():
            raise WebhookError("a rewrite answer needs a non-empty 'query'")
        return Decision("mask", query=query)
    raise WebhookError("answer has no valid 'action'")
