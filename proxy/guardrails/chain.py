"""Which guardrails run for a call, in what order, and what their decisions do to it.

Selected: every `default_on` guardrail, plus the key's `guardrails`, plus the request's `"guardrails"`; they
run in config order, each on the query the previous one returned, so a masked query is what the next
guardrail (and the upstream) sees. A guardrail that raises applies its `on_error`: `allow` (fail open) or
`block` (fail closed, 503). Every decision is recorded by name, type and action, never the query.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GuardrailBlockedError, InvalidRequestError, ProxyError
from .contract import GuardContext, Guardrail
from .custom import as_decision
from .webhook import WebhookError

log = logging.getLogger("proxy.guardrails")


class GuardrailUnavailableError(ProxyError):
    """A fail-closed guardrail could not decide; the request is refused without blaming the caller."""

    status = 503


@dataclass(frozen=True, slots=True)
class Configured:
    name: str
    type: str
    guardrail: Guardrail
    default_on: bool = False
    fail_open: bool = False


class GuardrailChain:
    def __init__(self, configured: Sequence[Configured] = ()) -> None:
        self.by_name = {g.name: g for g in configured}
        self._order = {g.name: i for i, g in enumerate(configured)}
        self.defaults = tuple(g for g in configured if g.default_on)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def unknown(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n not in self.by_name]

    def select(self, key_names: Sequence[str] | None, request_names: Sequence[str] | None) -> tuple[Configured, ...]:
        """The guardrails for one call; 400 for a request naming one that is not configured."""
        if not key_names and not request_names:
            return self.defaults
        missing = self.unknown(request_names or ())
        if missing:
            raise InvalidRequestError(f"invalid request: unknown guardrail(s): {', '.join(missing)}")
        missing = self.unknown(key_names or ())
        if missing:
            raise GuardrailUnavailableError(
                f"guardrail(s) {', '.join(missing)} assigned to this key are not configured", retry_after=1)
        chosen = {g.name for g in self.defaults} | set(key_names or ()) | set(request_names or ())
        return tuple(self.by_name[n] for n in sorted(chosen, key=self._order.__getitem__))

    async def run(self, selected: Sequence[Configured], query: str, context: GuardContext,
                  decisions: list[dict[str, Any]]) -> str:
        """Run `selected` over `query`; returns the query to send. Appends one decision per guardrail."""
        for g in selected:
            try:
                result = g.guardrail.check(query, context)
                if inspect.isawaitable(result):
                    result = await result
                decision = as_decision(result)
                if decision.action == "mask" and not (decision.query or "").strip():
                    raise ValueError("the guardrail masked the query to nothing")
            except Exception as exc:  # a guardrail never turns into a 500
                problem = str(exc) if isinstance(exc, WebhookError) else type(exc).__name__
                log.warning("guardrail %s could not check a query (%s); %s", g.name, problem,
                            "allowing it (on_error: allow)" if g.fail_open else "refusing it (on_error: block)")
                decisions.append({"name": g.name, "type": g.type, "action": "allowed" if g.fail_open else "blocked",
                                  "error": problem})
                if g.fail_open:
                    continue
                raise GuardrailUnavailableError(
                    f"guardrail '{g.name}' could not check the query ({problem}); the request was refused",
                    retry_after=1) from None
            record: dict[str, Any] = {"name": g.name, "type": g.type}
            if decision.entities:
                record["entities"] = list(decision.entities)
            if decision.action == "block":
                decisions.append({**record, "action": "blocked"})
                raise GuardrailBlockedError(g.name, decision.reason or "the query was blocked")
            if decision.action == "mask":
                assert decision.query is not None
                query = decision.query
                decisions.append({**record, "action": "masked"})
            else:
                decisions.append({**record, "action": "allowed"})
        return query
