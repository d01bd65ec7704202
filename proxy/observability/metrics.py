"""Prometheus metrics for `GET /metrics`: requests, latencies, spend, health and the background queues.

Each app owns its `CollectorRegistry` (tests build many apps; the global default registry is never used).
With several workers the CLI sets `PROMETHEUS_MULTIPROC_DIR`: every worker then writes its values to files
there and a scrape, answered by any worker, aggregates all of them. Values that live in other objects (the
spend queue, deployment cooldowns, callback queues) are sampled at scrape time and, with several workers,
every few seconds by each worker, so every worker's share is current.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..engine import Call
from ..errors import GuardrailBlockedError, RateLimitError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# rerank_proxy_deployment_state: LiteLLM's litellm_deployment_state values.
HEALTHY, PARTIAL_OUTAGE, OUTAGE = 0, 1, 2
STATE_VALUES = {"healthy": HEALTHY, "ok": HEALTHY, "cooling_down": PARTIAL_OUTAGE, "cooldown": PARTIAL_OUTAGE,
                "cooling down": PARTIAL_OUTAGE, "unavailable": OUTAGE, "down": OUTAGE, "disabled": OUTAGE}

END_USER_SERIES = 100
"""Distinct `end_user` label values a worker creates; later end-users are counted under `OTHER_END_USERS`."""
END_USER_CHARS = 64
OTHER_END_USERS = "__other__"

REQUEST = ["requested_model", "model_id", "api_provider", "status_code", "api_key_alias"]
USAGE = ["requested_model", "api_key_alias", "end_user"]


class Metrics:
    """Every metric of one app; `observe(call, record)` is the engine-side update, `render()` the scrape."""

    def __init__(self, *, multiprocess_dir: str | None = None, refresh_interval: float = 5.0,
                 end_user_labels: bool = True, end_user_series: int = END_USER_SERIES):
        self.multiprocess_dir = multiprocess_dir
        self.end_user_labels = end_user_labels
        """False: the usage counters' `end_user` label stays empty, so client-chosen ids add no series."""
        self.end_user_series = end_user_series
        self._end_users: set[str] = set()
        self.refresh_interval = refresh_interval
        self.registry: CollectorRegistry | None = None if multiprocess_dir else CollectorRegistry()
        reg = self.registry
        self.requests = Counter("rerank_proxy_requests", "Rerank requests, by alias, deployment, provider, "
                                "HTTP status and key alias.", REQUEST, registry=reg)
        self.failed_requests = Counter("rerank_proxy_failed_requests", "Rerank requests that did not get a 200, "
                                       "by error class.", ["requested_model", "api_key_alias", "status_code",
                                                           "exception_class"], registry=reg)
        self.latency = Histogram("rerank_proxy_request_duration_seconds", "Total time to answer a rerank request.",
                                 ["requested_model"], buckets=LATENCY_BUCKETS, registry=reg)
        self.upstream_latency = Histogram("rerank_proxy_upstream_duration_seconds", "Time spent waiting for "
                                          "providers (all attempts of one request).", ["requested_model",
                                                                                       "api_provider"],
                                          buckets=LATENCY_BUCKETS, registry=reg)
        self.overhead = Histogram("rerank_proxy_overhead_duration_seconds", "Time the proxy itself adds (total "
                                  "minus upstream).", ["requested_model"], buckets=OVERHEAD_BUCKETS, registry=reg)
        self.spend = Counter("rerank_proxy_spend_usd", "Spend in USD.", USAGE, registry=reg)
        self.search_units = Counter("rerank_proxy_search_units", "Billed search units.", USAGE, registry=reg)
        self.tokens = Counter("rerank_proxy_tokens", "Billed tokens.", USAGE, registry=reg)
        self.fallbacks = Counter("rerank_proxy_fallbacks", "Requests answered by a fallback alias.",
                                 ["requested_model", "fallback_model"], registry=reg)
        self.retries = Counter("rerank_proxy_retries", "Upstream attempts after the first, per request alias.",
                               ["requested_model"], registry=reg)
        self.deployment_failures = Counter("rerank_proxy_deployment_failures", "Failed upstream attempts, by "
                                           "deployment and error class.", ["requested_model", "model_id",
                                                                           "api_provider", "exception_class"],
                                           registry=reg)
        self.guardrail_blocks = Counter("rerank_proxy_guardrail_blocks", "Requests blocked by a guardrail.",
                                        ["requested_model", "guardrail", "api_key_alias"], registry=reg)
        self.limit_refusals = Counter("rerank_proxy_limit_refusals", "Requests refused by a budget or rate limit.",
                                      ["requested_model", "api_key_alias"], registry=reg)
        self.cache_requests = Counter("rerank_proxy_cache_requests", "Rerank requests that consulted the result "
                                      "cache, by result (hit, partial, miss).", ["requested_model", "result"],
                                      registry=reg)
        self.cache_documents = Counter("rerank_proxy_cache_documents", "Documents whose score came from the "
                                       "result cache (not sent upstream).", ["requested_model"], registry=reg)
        self.cache_saved = Counter("rerank_proxy_cache_saved_usd", "USD the result cache saved.",
                                   ["requested_model"], registry=reg)
        self.cache_unavailable = Counter("rerank_proxy_cache_unavailable", "Requests that went on without the "
                                         "result cache because its Redis did not answer in time.",
                                         ["requested_model"], registry=reg)
        self.in_flight = Gauge("rerank_proxy_in_flight_requests", "HTTP requests being served now.",
                               registry=reg, multiprocess_mode="livesum")
        self.deployment_state = Gauge("rerank_proxy_deployment_state", "0 healthy, 1 cooling down (partial "
                                      "outage), 2 unavailable.", ["model_id", "api_provider", "requested_model"],
                                      registry=reg, multiprocess_mode="livemax")
        self.spend_queue = Gauge("rerank_proxy_spend_queue_depth", "Spend rows in memory, not yet written.",
                                 registry=reg, multiprocess_mode="livesum")
        self.spend_failures = Counter("rerank_proxy_spend_write_failures", "Failed spend-log write attempts "
                                      "(each is retried).", registry=reg)
        self.spend_dropped = Counter("rerank_proxy_spend_dropped", "Spend rows lost (queue full and the spill "
                                     "file missing, full or on a full disk).", registry=reg)
        self.spend_rejected = Counter("rerank_proxy_spend_rejected", "Spend rows the database refused for their "
                                      "content, kept in the rejected file (<spill path>.rejected).", registry=reg)
        self.spend_journal = Gauge("rerank_proxy_spend_journal_bytes", "Bytes in the spend spill file (rows "
                                   "journaled while the database was failing).", registry=reg,
                                   multiprocess_mode="max")
        self.callback_queue = Gauge("rerank_proxy_callback_queue_depth", "Events waiting for a logging callback.",
                                    ["callback"], registry=reg, multiprocess_mode="livesum")
        self.callback_events = Counter("rerank_proxy_callback_events", "Events handled by logging callbacks, by "
                                       "result (delivered, failed, dropped).", ["callback", "result"], registry=reg)
        self.serving = 0
        """HTTP requests being served now: counted by the request-log middleware as a plain integer (two gauge
        updates per request took a lock each) and copied into `in_flight` whenever the metrics are sampled."""
        self._writer: Any = None
        self._router: Any = None
        self._sinks: Iterable[Any] = ()
        self._providers: dict[str, str] = {}
        self._aliases: frozenset[str] | None = None
        self._hot: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._cache_hot: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._seen: dict[tuple[str, ...], float] = {}
        self._task: asyncio.Task[None] | None = None

    # -- request path ---------------------------------------------------------------------------------
    def observe(self, call: Call, record: dict[str, Any]) -> None:
        alias = record["model"] or ""
        if self._aliases is not None and alias not in self._aliases:
            alias = ""  # an unknown model name is the caller's text: never a label value (unbounded series)
        key_alias = record["key_alias"] or ""
        status = str(record["status"])
        deployment = call.outcome.deployment
        provider = deployment.provider.name if deployment is not None else ""
        end_user = self._end_user_label(record["end_user"]) if record["end_user"] and self.end_user_labels else ""
        key = (alias, deployment.id if deployment is not None else "", provider, status, key_alias, end_user)
        hot = self._hot.get(key)
        if hot is None:  # `labels()` validates and locks; the common series are looked up once
            if len(self._hot) > 10_000:
                self._hot.clear()
            usage = (alias, key_alias, end_user)
            hot = self._hot[key] = (self.requests.labels(*key[:5]), self.latency.labels(alias),
                                    self.overhead.labels(alias), self.upstream_latency.labels(alias, provider),
                                    self.spend.labels(*usage), self.search_units.labels(*usage),
                                    self.tokens.labels(*usage))
        requests, latency, overhead, upstream, spend, search_units, tokens = hot
        requests.inc()
        latency.observe(record["latency_ms"] / 1000)
        overhead.observe(record["overhead_ms"] / 1000)
        if record["attempts"]:
            upstream.observe(record["upstream_ms"] / 1000)
            if record["attempts"] > 1:
                self.retries.labels(alias).inc(record["attempts"] - 1)
        for deployment_id, failure in call.outcome.attempts:
            failed_provider = self._providers.get(deployment_id, provider)
            self.deployment_failures.labels(alias, deployment_id, failed_provider, failure.kind).inc()
        error = call.error
        if error is not None:
            self.failed_requests.labels(alias, key_alias, status, record["error_class"] or "").inc()
            if isinstance(error, GuardrailBlockedError):
                self.guardrail_blocks.labels(alias, error.guardrail, key_alias).inc()
            elif isinstance(error, RateLimitError):
                self.limit_refusals.labels(alias, key_alias).inc()
        if record["fallback_used"]:
            self.fallbacks.labels(alias, record["served_model"] or "").inc()
        use = call.cache
        if use is not None and call.error is None:
            self._observe_cache(alias, use)
        if record["cost"]:
            spend.inc(record["cost"])
        if record["search_units"]:
            search_units.inc(record["search_units"])
        if record["tokens"]:
            tokens.inc(record["tokens"])

    def _observe_cache(self, alias: str, use: Any) -> None:
        hot = self._cache_hot.get((alias, use.status))
        if hot is None:  # looked up once per series, as in `observe`
            if len(self._cache_hot) > 10_000:
                self._cache_hot.clear()
            hot = self._cache_hot[alias, use.status] = (self.cache_requests.labels(alias, use.status),
                                                        self.cache_documents.labels(alias),
                                                        self.cache_saved.labels(alias))
        requests, documents, saved = hot
        requests.inc()
        if use.documents:
            documents.inc(use.documents)
        if use.saved:
            saved.inc(float(use.saved))
        if use.unavailable:
            self.cache_unavailable.labels(alias).inc()

    def _end_user_label(self, end_user: str | None) -> str:
        """The caller-chosen end-user id as a label: cut to `END_USER_CHARS`, and the first `end_user_series`
        distinct ids only (each id is a series per usage counter, kept until the process ends)."""
        if not end_user or not self.end_user_labels:
            return ""
        end_user = end_user[:END_USER_CHARS]
        if end_user not in self._end_users:
            if len(self._end_users) >= self.end_user_series:
                return OTHER_END_USERS
            self._end_users.add(end_user)
        return end_user

    def observe_refused(self, record: dict[str, Any]) -> None:
        """A /rerank request answered before the engine saw it (401, 413, unreadable body...)."""
        status = str(record["status"])
        self.requests.labels("", "", "", status, "").inc()
        self.latency.labels("").observe(record["latency_ms"] / 1000)
        if record["status"] >= 400:
            self.failed_requests.labels("", "", status, record["error_class"] or "").inc()

    # -- sampled at scrape time -----------------------------------------------------------------------
    def watch(self, *, writer: Any = None, router: Any = None, sinks: Iterable[Any] = ()) -> None:
        """Objects whose state is read at scrape time: the spend writer, the router, the callback sinks."""
        self._writer, self._sinks = writer, tuple(sinks)
        if router is not None:
            self.track_router(router)

    def track_router(self, router: Any) -> None:
        """The router's deployments (again after a config reload): labels for its aliases and providers."""
        self._router = router
        self._providers = {d.id: d.provider.name for deps in router.aliases.values() for d in deps}
        self._aliases = frozenset(router.aliases)

    def refresh(self) -> None:
        self.in_flight.set(self.serving)
        writer = self._writer
        if writer is not None:
            self.spend_queue.set(writer.depth)
            self._advance(self.spend_failures, ("spend_failures",), writer.failures)
            self._advance(self.spend_dropped, ("spend_dropped",), writer.dropped)
            self._advance(self.spend_rejected, ("spend_rejected",), writer.rejected)
            self.spend_journal.set(writer.spill_bytes())
        for model_id, provider, alias, value in deployment_states(self._router):
            self.deployment_state.labels(model_id, provider, alias).set(value)
        for sink in self._sinks:
            self.callback_queue.labels(sink.name).set(sink.depth)
            for result in ("delivered", "failed", "dropped"):
                self._advance(self.callback_events.labels(sink.name, result), ("cb", sink.name, result),
                              getattr(sink, result))

    def _advance(self, counter: Any, key: tuple[str, ...], total: float) -> None:
        """Move a counter up to `total`, a running count kept by another object."""
        delta = total - self._seen.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[key] = total

    def render(self) -> bytes:
        self.refresh()
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    async def arender(self) -> bytes:
        """The exposition text; reading the multiprocess files happens in a worker thread."""
        if self.registry is not None:
            return self.render()
        return await asyncio.to_thread(self.render)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.multiprocess_dir and self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="metrics-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.multiprocess_dir:
            from prometheus_client.multiprocess import mark_process_dead

            try:
                mark_process_dead(os.getpid(), self.multiprocess_dir)
            except OSError:
                pass

    async def _refresh_forever(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a metrics sample never takes the worker down
                log.exception("metrics refresh failed")
            await asyncio.sleep(self.refresh_interval)


def deployment_states(router: Any) -> list[tuple[str, str, str, int]]:
    """(deployment id, provider, alias, state value) for every deployment.

    Uses `Router.deployment_states()` (cooldowns) when the router has it; otherwise a deployment is healthy
    unless it lacks a configured environment variable.
    """
    if router is None:
        return []
    reported: Callable[[], dict[str, str]] | None = getattr(router, "deployment_states", None)
    states = reported() if callable(reported) else {}
    rows, seen = [], set()
    for alias, deployments in router.aliases.items():
        for deployment in deployments:
            if deployment.id in seen:
                continue
            seen.add(deployment.id)
            state = states.get(deployment.id) or ("unavailable" if deployment.missing_env else "healthy")
            value = STATE_VALUES.get(str(state).lower(), PARTIAL_OUTAGE)
            rows.append((deployment.id, deployment.provider.name, alias, value))
    return rows

