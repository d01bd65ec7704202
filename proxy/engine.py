"""The server's whole request path, framework-free and readable top to bottom.

resolve alias → check access → validate → guardrails on the query → budgets and rate limits →
route (attempts, retries, fallbacks) → spend event queued (never awaited) → served.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from .auth.caller import Caller
from .cache import CacheUse, ResultCache
from .errors import (
    InternalError,
    InvalidRequestError,
    PermissionDeniedError,
    ProxyError,
    error_class,
)
from .normalise import Ranked
from .request import make_request
from .routing import Outcome, Router
from .spend.events import SpendEvent
from .tags import deployment_tags, merged
from .wire import RerankBody

log = logging.getLogger("proxy.engine")

_NO_ARGUMENTS: dict[str, Any] = {}  # never changed: `**` of it passes nothing


class _RequestIds:
    """Unique request ids (spend rows are keyed by them) without asking the OS for randomness per request:
    a random prefix per process, renewed in a forked child, and a counter."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self._prefix, self._counter = uuid.uuid4().hex[:16], itertools.count()

    def __next__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()


class SpendSink(Protocol):
    def submit(self, event: SpendEvent) -> None: ...


class Checks(Protocol):
    """Governance hooks (guardrails, budgets, rate limits); the default does nothing."""

    async def before(self, call: Call) -> None: ...

    def after(self, call: Call) -> None: ...


class Observer(Protocol):
    """Sees every finished call (metrics, logs, callbacks); must not block or raise."""

    def on_call(self, call: Call) -> None: ...


class NoChecks:
    async def before(self, call: Call) -> None:
        return None

    def after(self, call: Call) -> None:
        return None


@dataclass(slots=True)
class Call:
    """One rerank call as it moves through the engine."""

    body: RerankBody
    caller: Caller
    api_version: int
    request_id: str = field(default_factory=_request_ids.__next__)
    end_user: str | None = None
    alias: str = ""
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=partial(datetime.now, UTC))  # no Python frame per call
    request: Any = None
    outcome: Outcome = field(default_factory=Outcome)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    error: ProxyError | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Scratch space for checks (e.g. a rate-limit slot to release)."""
    cost: Decimal = Decimal(0)
    """USD of the answer, read once from the response (headers, spend, budgets and metrics all need it)."""
    cache_control: str | None = None
    """The request's `Cache-Control` header."""
    cache: CacheUse | None = None
    """How this call used the result cache (None: it did not)."""
    tags: tuple[str, ...] = ()
    """The request's, its key's and its team's tags (`proxy.tags`); the deployment's join on the spend row."""

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def overhead_ms(self) -> float:
        return max(self.elapsed_ms - self.outcome.upstream_ms, 0.0)

    @property
    def response(self) -> Ranked | None:
        return self.outcome.response


class Engine:
    def __init__(self, router: Router, spend: SpendSink | None = None, checks: Checks | None = None, *,
                 observers: list[Observer] | None = None, max_documents: int = 10_000,
                 cache: ResultCache | None = None):
        self.router = router
        self.cache = cache
        self.spend = spend
        self.checks = checks or NoChecks()
        self.observers = observers or []
        self.max_documents = max_documents

    def resolve_alias(self, body: RerankBody, caller: Caller) -> str:
        alias = body.model
        if not alias:
            if len(self.router.aliases) == 1:
                return next(iter(self.router.aliases))
            raise InvalidRequestError("a model parameter is required for this endpoint.")
        if not caller.may_use(alias) and not caller.may_use(self.router.canonical(alias)):
            raise PermissionDeniedError(f"{caller.refused_by(alias)} is not allowed to use model '{alias}'")
        return alias

    async def rerank(self, call: Call) -> Call:
        body = call.body
        try:
            call.alias = self.resolve_alias(body, call.caller)
            self.router.require(call.alias)
            call.request = make_request(
                body.query, body.documents, top_n=body.top_n, return_documents=body.return_documents,
                rank_fields=body.rank_fields, max_chunks_per_doc=body.max_chunks_per_doc,
                max_tokens_per_doc=body.max_tokens_per_doc, api_version=call.api_version,
                max_documents=self.max_documents, **(body.rare_arguments() or _NO_ARGUMENTS),
            )
            if self.cache is not None:
                record = call.caller.record
                call.cache = self.cache.use_for(call.caller.key_hash, getattr(record, "metadata", None),
                                                body.cache, call.cache_control)
            await self.checks.before(call)
            if call.cache is None or not await self._cached(call, call.cache):
                # The request's fallbacks are limited to aliases the key may use; the key's are the admin's.
                fallbacks = [f for f in body.fallbacks if call.caller.may_use(f)] if body.fallbacks else []
                fallbacks += _key_fallbacks(call.caller, call.alias)
                await self.router.route(call.alias, call.request, fallbacks=fallbacks, outcome=call.outcome,
                                        tags=call.tags)
                answer = call.outcome.response or call.outcome.answer()  # answer() raises on a (buggy) None
                call.cost = answer.cost
                if call.cache is not None and self.cache is not None:
                    # Stored under the alias that served it: a fallback's answer is never the primary's.
                    scope = self.router.answer_scope(call.outcome.alias, call.tags)
                    if scope is not None:
                        self.cache.keep(scope, call.request, answer, call.cache)
        except ProxyError as exc:
            call.error = exc
            raise
        except Exception as exc:  # a bug: logged once with its traceback; the log line and metrics say 500
            log.error("unexpected %s serving model '%s'", type(exc).__name__, call.alias, exc_info=exc)
            call.error = InternalError()
            raise call.error from None
        finally:
            self.checks.after(call)
            self._record(call)
            for observer in self.observers:
                try:
                    observer.on_call(call)
                except Exception:  # an observer never fails a request
                    log.exception("observer %s failed", type(observer).__name__)
        return call

    async def _cached(self, call: Call, use: CacheUse) -> bool:
        """Serve `call` from a stored whole answer when there is one; else let its attempts use the scores."""
        assert self.cache is not None
        call.request.cache = use
        scope = self.router.answer_scope(call.alias, call.tags)
        response = None if scope is None else await self.cache.answer(scope, call.request, use)
        if response is None:
            return False
        call.outcome.response, call.outcome.alias = response, self.router.canonical(call.alias)
        return True

    def _record(self, call: Call) -> None:
        """Queue one spend row for any call that reached a provider or a guardrail; never awaits the DB."""
        if self.spend is None:
            return
        reached = bool(call.outcome.attempts) or call.response is not None
        if not reached and not call.guardrails:
            return
        response, deployment, caller = call.response, call.outcome.deployment, call.caller
        usage = response.usage if response is not None else None
        error = call.error
        own = deployment_tags(deployment.params) if deployment is not None else None
        tags = merged(call.tags, own) if own else call.tags
        key = caller.record
        self.spend.submit(SpendEvent(
            request_id=call.request_id,
            started_at=call.started_at,
            model_alias=call.alias,
            status=error.status if error else 200,
            latency_ms=round(call.elapsed_ms, 3),
            key_hash=caller.key_hash,
            key_alias=caller.key_alias,
            user_id=caller.user_id,
            end_user=call.end_user,
            deployment=deployment.id if deployment else response.deployment if response is not None else None,
            provider=deployment.provider.name if deployment else None,
            provider_model=deployment.model if deployment else None,
            search_units=response.search_units if response is not None else 0.0,
            input_tokens=usage.input_tokens if usage is not None else None,
            total_tokens=usage.total_tokens if usage is not None else None,
            cost=call.cost,
            error_class=error_class(error) if error is not None else None,
            fallback_used=call.outcome.fallback_used,
            guardrails=call.guardrails or None,
            cache=call.cache.status if call.cache is not None and error is None else None,
            cost_saved=call.cache.saved if call.cache is not None else Decimal(0),
            key_id=key.key_id if key is not None else None,
            team_id=key.team_id if key is not None else None,
            tags=list(tags) if tags else None,
        ))


def _key_fallbacks(caller: Caller, alias: str) -> list[str]:
    """Per-key fallbacks: `["alias-b"]` for every alias, or LiteLLM's `[{"alias": ["b"]}]` form."""
    configured = caller.record.fallbacks if caller.record is not None else None
    if not configured:
        return []
    targets: list[str] = []
    for item in configured:
        if isinstance(item, str):
            targets.append(item)
        elif isinstance(item, dict):
            targets.extend(item.get(alias, []))
    return targets
