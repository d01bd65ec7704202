"""The one router, used by the server and the SDK's `proxy.Router`: alias → deployments → attempts.

An attempt that fails with a retryable error moves on to the next deployment (then to fallback
aliases); a caller's bad request is never retried. When every attempt fails, the caller gets one
`AllDeploymentsFailedError` that keeps every cause.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..deployments import resolve_deployment
from ..errors import AllDeploymentsFailedError, ModelNotFoundError, ProxyError
from ..invoke import invoke
from ..providers import Deployment
from ..request import RerankRequest, make_request
from ..transport import HttpxTransport, Transport
from ..wire import RerankResponse


@dataclass(slots=True)
class Outcome:
    """What the router did for one call, for headers, spend rows and logs."""

    response: RerankResponse | None = None
    deployment: Deployment | None = None
    alias: str = ""
    fallback_used: bool = False
    upstream_ms: float = 0.0
    attempts: list[tuple[str, ProxyError]] = field(default_factory=list)
    timeline: list[tuple[Deployment, float, float, ProxyError | None]] = field(default_factory=list)
    """(deployment, perf_counter start, end, error) of every attempt: trace spans are built from it."""


class Router:
    """Load balancing and failover over `aliases` ({alias: deployments})."""

    def __init__(
        self,
        aliases: Mapping[str, Sequence[Deployment]] | None = None,
        *,
        model_list: list[dict[str, Any]] | None = None,
        fallbacks: list[dict[str, list[str]]] | None = None,
        default_fallbacks: list[str] | None = None,
        num_retries: int = 2,
        routing_strategy: str = "simple-shuffle",
        transport: Transport | None = None,
        environ: Mapping[str, str] | None = None,
        seed: int | None = None,
    ):
        table: dict[str, list[Deployment]] = {alias: list(deps) for alias, deps in (aliases or {}).items()}
        for entry in model_list or []:
            params = dict(entry["litellm_params"])
            alias = entry["model_name"]
            dep_id = str((entry.get("model_info") or {}).get("id") or f"{alias}#{len(table.get(alias, []))}")
            table.setdefault(alias, []).append(
                resolve_deployment(params["model"], params, environ=environ if environ is not None else os.environ,
                                   deployment_id=dep_id)
            )
        self.aliases = {alias: tuple(deps) for alias, deps in table.items()}
        self.fallbacks: dict[str, list[str]] = {}
        for item in fallbacks or []:
            for alias, targets in item.items():
                self.fallbacks.setdefault(alias, []).extend(targets)
        self.default_fallbacks = list(default_fallbacks or [])
        self.num_retries = num_retries
        self.routing_strategy = routing_strategy
        self._transport = transport
        self._rng = random.Random(seed)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = HttpxTransport()
        return self._transport

    def require(self, alias: str) -> None:
        if alias not in self.aliases:
            raise ModelNotFoundError(f"model '{alias}' not found; ask GET /v1/models for the models you can use")

    def _order(self, deployments: Sequence[Deployment]) -> list[Deployment]:
        """Weighted shuffle (by `weight`, else `rpm`, else equal)."""
        pool = list(deployments)
        ordered = []
        while pool:
            weights = [float(d.params.get("weight") or d.params.get("rpm") or 1) for d in pool]
            pick = self._rng.choices(range(len(pool)), weights=weights)[0]
            ordered.append(pool.pop(pick))
        return ordered

    def _chain(self, alias: str, extra_fallbacks: Sequence[str] | None) -> list[str]:
        chain = [alias]
        for candidate in [*(extra_fallbacks or []), *self.fallbacks.get(alias, []), *self.default_fallbacks]:
            if candidate not in chain and candidate in self.aliases:
                chain.append(candidate)
        return chain

    async def route(self, alias: str, request: RerankRequest, *, fallbacks: Sequence[str] | None = None,
                    outcome: Outcome | None = None) -> Outcome:
        """Serve `request` from `alias` (then its fallbacks); `outcome` is filled in even on failure."""
        self.require(alias)
        outcome = outcome if outcome is not None else Outcome()
        outcome.alias = alias
        for position, target in enumerate(self._chain(alias, fallbacks)):
            deployments = self._order(self.aliases[target])
            tries = max(len(deployments), 1 + self.num_retries)
            for attempt in range(tries):
                deployment = deployments[attempt % len(deployments)]
                started = time.perf_counter()
                try:
                    response = await invoke(request, deployment, self.transport)
                except ProxyError as exc:
                    ended = time.perf_counter()
                    outcome.upstream_ms += (ended - started) * 1000
                    outcome.attempts.append((deployment.id, exc))
                    outcome.timeline.append((deployment, started, ended, exc))
                    outcome.deployment = deployment
                    if not exc.retryable:
                        raise
                    continue
                ended = time.perf_counter()
                outcome.upstream_ms += (ended - started) * 1000
                outcome.timeline.append((deployment, started, ended, None))
                outcome.response = response
                outcome.deployment = deployment
                outcome.alias = target
                outcome.fallback_used = position > 0
                return outcome
        raise AllDeploymentsFailedError(alias, outcome.attempts)

    # -- SDK face ------------------------------------------------------------------------------------
    async def arerank(self, model: str, query: str, documents: list[Any], *, top_n: int | None = None,
                      return_documents: bool | None = True, rank_fields: list[str] | None = None,
                      max_chunks_per_doc: int | None = None, max_tokens_per_doc: int | None = None,
                      fallbacks: list[str] | None = None) -> RerankResponse:
        request = make_request(
            query, documents, top_n=top_n, return_documents=return_documents, rank_fields=rank_fields,
            max_chunks_per_doc=max_chunks_per_doc, max_tokens_per_doc=max_tokens_per_doc,
            api_version=1 if (rank_fields or any(isinstance(d, dict) for d in documents or ())) else 2,
        )
        outcome = await self.route(model, request, fallbacks=fallbacks)
        assert outcome.response is not None
        return outcome.response

    def rerank(self, model: str, query: str, documents: list[Any], **kwargs: Any) -> RerankResponse:
        from ..sdk import run_sync

        return run_sync(self.arerank(model, query, documents, **kwargs))

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
