"""`create_app(settings)`: builds the whole server; runtime state lives in the lifespan, not in globals."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from .api import (
    audit,
    customers,
    health,
    keys,
    metrics,
    model_admin,
    models,
    reports,
    rerank,
    spend,
    tags,
    teams,
    users,
)
from .api.rendering import install_error_handlers
from .api.runtime import Runtime
from .auth.caller import Authenticator
from .cache import ResultCache
from .config_loading import Settings, load_settings
from .connections import ConnectionLimits
from .engine import Engine
from .governance import Governance
from .live_models import LiveModels
from .observability import RequestLogMiddleware, Telemetry, configure_logging
from .process_tuning import settle_for_serving
from .record_sync import RecordSync
from .redis_link import RedisLink
from .routing import BackgroundHealthChecks, Router
from .routing.state import State
from .spend.db import SchemaBehindError, check_schema, migrate
from .spend.durations import parse_duration
from .spend.gate import DatabaseGate
from .spend.key_changes import KEY
from .spend.retention import Retention
from .spend.store import Store
from .spend.writer import SpendWriter
from .transport import Transport, server_transport
from .ui import install as install_ui

log = logging.getLogger("proxy")

CONFIG_ENV = "RERANK_PROXY_CONFIG"
STATUS_ENV = "RERANK_PROXY_STATUS_DIR"

# FastAPI >= 0.165 looks up OpenTelemetry providers on every request; our own tracing lives in callbacks/.
_NO_FRAMEWORK_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {}
)
DEBUG_ENV = "RERANK_PROXY_DEBUG"


def build_router(settings: Settings, transport: Transport, *, state: State | None = None,
                 link: RedisLink | None = None) -> Router:
    """The router for `settings`; `state` (an earlier router's) carries cooldowns and counts over a reload;
    `link`: the process's Redis (else one of its own when `settings` name a Redis)."""
    r = settings.router
    return Router(
        settings.aliases,
        fallbacks=r.fallbacks or settings.config.litellm_settings.fallbacks,
        default_fallbacks=r.default_fallbacks or settings.config.litellm_settings.default_fallbacks,
        model_group_alias=r.model_group_alias,
        num_retries=r.num_retries,
        routing_strategy=r.routing_strategy,
        transport=transport,
        seed=r.seed,
        timeout=r.timeout,
        retry_after=r.retry_after,
        max_retry_after=r.max_retry_after,
        allowed_fails=r.allowed_fails,
        cooldown_time=r.cooldown_time,
        max_cooldown_time=r.max_cooldown_time,
        routing_strategy_args=r.routing_strategy_args,
        enable_pre_call_checks=r.enable_pre_call_checks,
        enable_tag_filtering=r.enable_tag_filtering,
        tag_filtering_match_any=r.tag_filtering_match_any,
        redis_url=settings.redis_url,
        redis_prefix=r.redis_prefix,
        redis_refresh_interval=r.redis_refresh_interval,
        redis_link=link,
        state=state,
    )


def spill_path(settings: Settings) -> Path:
    """Where spend rows go when the database cannot take them at shutdown (re-read at the next start):
    the configured path, else beside a SQLite database file, else in the working directory."""
    if settings.general.spend_spill_path:
        return Path(settings.general.spend_spill_path)
    url = settings.database_url or "sqlite:///./rerank_proxy.db"
    if url.startswith("sqlite:///") and ":memory:" not in url:
        database = Path(url.removeprefix("sqlite:///"))
        return database.with_name(database.name + ".spend-spill")
    return Path("rerank_proxy.spend-spill")


def warn_missing_env(settings: Settings) -> None:
    for name in settings.missing_env:
        users = [d.id for deps in settings.aliases.values() for d in deps if d.missing_env == name]
        log.warning("environment variable %s is not set; deployment(s) %s will answer 503 until it is",
                    name, ", ".join(users))


def create_app(settings: Settings, *, transport: Transport | None = None, tracer_provider: Any = None,
               clock: Callable[[], datetime] | None = None,
               on_spend_lost: Callable[[int], None] | None = None) -> FastAPI:
    """`clock`: wall-clock time for rate limits and budgets (tests pin it; the default is the real time).
    `on_spend_lost(count)` runs at shutdown when spend rows were lost (the CLI then exits non-zero)."""
    telemetry = Telemetry(settings, tracer_provider=tracer_provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        general = settings.general
        warn_missing_env(settings)
        store = Store.open(settings.database_url, pool_limit=general.database_connection_pool_limit)
        gate = DatabaseGate(store, timeout=general.database_read_timeout, connected=False,
                            threads=min(4, general.database_connection_pool_limit or 4))
        prepare = partial(check_schema if general.disable_schema_update else migrate, store.engine)
        try:
            await asyncio.to_thread(prepare)
        except SchemaBehindError:
            await asyncio.to_thread(store.close)
            raise
        except Exception as exc:  # noqa: BLE001 - start anyway: serve what needs no database, connect later
            log.error("database unreachable at start-up (%s); serving without it until it answers",
                      type(exc).__name__)
            gate.connect_later(prepare)
        else:
            gate.connected = True
        flush_interval = general.flush_interval
        writer = SpendWriter(store, flush_interval=store.flush_interval if flush_interval is None else flush_interval,
                             spill_path=spill_path(settings),
                             spill_max_bytes=int(general.spend_spill_max_mb * 1024 * 1024),
                             probe=lambda: gate.connected and store.ping(write=True))
        await writer.start(journaling=not gate.connected)
        upstream = transport or server_transport(settings.client_options)
        redis_url = settings.redis_url
        link = RedisLink(redis_url, prefix=general.redis_key_prefix) if redis_url else None
        router = build_router(settings, upstream, link=link)
        governance = Governance(settings, store, router, gate, clock=clock, link=link)
        await governance.start()
        cache_params = settings.cache
        cache = None if cache_params is None else ResultCache.from_params(
            cache_params, link=link, key_prefix=general.redis_key_prefix)
        engine = Engine(router, None if general.disable_spend_logs else writer, governance.checks,
                        max_documents=general.max_documents, observers=[telemetry], cache=cache)
        await telemetry.start(writer=writer, router=router)
        def adopt(new: Settings) -> None:
            governance.adopt_config(new)
            telemetry.metrics.track_router(router)

        live = LiveModels(settings, store=store, router=router, on_change=adopt,
                          build_router=lambda new, state: build_router(new, upstream, state=state, link=link))
        await live.start()
        health_checks = BackgroundHealthChecks(router.check_health, general.health_check_interval)
        if general.background_health_checks:
            health_checks.start()
        retention = None
        if general.maximum_spend_logs_retention_period is not None:
            retention = Retention(store, parse_duration(general.maximum_spend_logs_retention_period),
                                  parse_duration(general.maximum_spend_logs_retention_interval).seconds())
            retention.start()
        authenticator = Authenticator(gate, settings.master_key, general.key_cache_ttl,
                                      max_stale=general.key_cache_max_stale,
                                      allow_unverified=general.allow_requests_on_db_unavailable)
        record_sync = RecordSync(store, {KEY: authenticator.forget, **governance.cached_records},
                                 interval=general.model_sync_interval,
                                 retention=2 * (general.key_cache_ttl + general.key_cache_max_stale))
        await record_sync.start()
        app.state.runtime = Runtime(
            settings=settings, store=store, writer=writer, authenticator=authenticator,
            router=router, engine=engine, governance=governance, telemetry=telemetry, gate=gate, models=live,
            record_sync=record_sync,
        )
        settle_for_serving()  # everything built so far lives as long as the server
        try:
            yield
        finally:
            # In-flight requests are done: deliver queued callback events and spend rows side by side.
            await health_checks.stop()
            if retention is not None:
                await retention.stop()
            if cache is not None:
                await cache.aclose()
            await live.stop()
            await record_sync.stop()
            await governance.stop()
            await asyncio.gather(telemetry.stop(), writer.stop())
            if writer.dropped:
                log.error("%d spend rows were lost by this process (database and spill file both unavailable "
                          "or full); see rerank_proxy_spend_dropped_total", writer.dropped)
                if on_spend_lost is not None:
                    on_spend_lost(writer.dropped)
            await router.aclose()
            if link is not None:
                await link.aclose()
            if transport is None:
                await upstream.aclose()
            await gate.close()
            await asyncio.to_thread(store.close)

    app = Gateway(title="rerank-proxy", version="0.1.0", lifespan=lifespan,
                  description="A Cohere-compatible rerank gateway.", **_NO_FRAMEWORK_TELEMETRY)
    app.state.metrics = telemetry.metrics
    general = settings.general
    app.state.connection_limits = ConnectionLimits(  # read by the CLI server's protocol (connections.py)
        header_timeout=general.request_header_timeout, body_timeout=general.request_body_timeout,
        max_connections=general.max_connections)
    install_error_handlers(app)
    install_ui(app)
    for module in (rerank, keys, customers, teams, users, tags, audit, spend, reports, health, models, model_admin,
                   metrics):
        app.include_router(module.router)
    return app


class Gateway(FastAPI):
    """FastAPI with two pure-ASGI layers outside its middleware stack (its error middleware included): the
    request log (every request gets one line) and the rerank fast path (which answers its own errors)."""

    def build_middleware_stack(self) -> ASGIApp:
        inner = rerank.RerankFastPath(super().build_middleware_stack())
        return RequestLogMiddleware(inner, metrics=getattr(self.state, "metrics", None))


def app_from_environment() -> FastAPI:
    """Factory for uvicorn workers: the CLI passes the config path through the environment."""
    environ = dict(os.environ)
    settings = load_settings(environ.get(CONFIG_ENV) or None, environ)
    litellm = settings.config.litellm_settings
    configure_logging(debug=environ.get(DEBUG_ENV) == "1" or bool(litellm.set_verbose),
                      json_logs=bool(litellm.json_logs))
    status_dir = environ.get(STATUS_ENV)
    return create_app(settings, on_spend_lost=partial(report_loss, Path(status_dir)) if status_dir else None)


def report_loss(status_dir: Path, count: int) -> None:
    """Tell the CLI (which may run several worker processes) that this worker lost `count` spend rows."""
    (status_dir / f"{os.getpid()}.lost").write_text(str(count))
