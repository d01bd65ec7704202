"""Logging callbacks, configured like LiteLLM's: `litellm_settings.callbacks` (success and failure events),
`success_callback`, `failure_callback`, with options under `callback_settings.<name>`.

Names: `webhook` (batched HTTP POSTs), `otel` / `opentelemetry` (traces; extra `otel`), or an import path
`package.module:Name` (a user's class with `log_success_event` / `log_failure_event`). `prometheus` is
accepted and changes nothing (metrics are always served at /metrics); other LiteLLM integrations are not
available here: each is reported once at start and ignored. A callback never fails or slows a request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ProxyError
from ..settings import ConfigError, LitellmSettings
from .custom import CallbackImportError, CustomSink, load_object
from .otel import OtelSink, tracer_provider_from_settings
from .queue import QueuedSink
from .webhook import WebhookSink

__all__ = ["Callbacks", "QueuedSink", "build_callbacks"]

log = logging.getLogger("proxy.callbacks")

ALWAYS_ON = {"prometheus"}
OTEL_NAMES = {"otel", "opentelemetry"}


class Callbacks:
    """Routes each finished call's record to the sinks that want it (success: status < 400)."""

    def __init__(self, routes: list[tuple[QueuedSink, bool, bool]]):
        self.routes = routes

    @property
    def sinks(self) -> list[QueuedSink]:
        return [sink for sink, _, _ in self.routes]

    def __bool__(self) -> bool:
        return bool(self.routes)

    def submit(self, record: dict[str, Any], call: Any) -> None:
        success = record["status"] < 400
        for sink, on_success, on_failure in self.routes:
            if on_success if success else on_failure:
                try:
                    sink.submit(record, call)
                except Exception:  # one sink's bug never reaches the request or the other sinks
                    log.exception("callback %s refused an event", sink.name)

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def stop(self) -> None:
        """Deliver what is queued (each sink bounded by its `drain_timeout`), all sinks at once."""
        await asyncio.gather(*(sink.stop() for sink in self.sinks), return_exceptions=True)


def build_callbacks(litellm: LitellmSettings, environ: Mapping[str, str], *, config_dir: Path | None = None,
                    tracer_provider: Any = None) -> Callbacks:
    wanted: dict[str, list[bool]] = {}
    for field, success, failure in (("callbacks", True, True), ("success_callback", True, False),
                                    ("failure_callback", False, True)):
        for index, name in enumerate(getattr(litellm, field)):
            if not isinstance(name, str) or not name.strip():
                raise ConfigError([f"litellm_settings.{field}[{index}]: expected a callback name or import path"])
            flags = wanted.setdefault(name.strip(), [False, False])
            flags[0] |= success
            flags[1] |= failure
    settings = litellm.callback_settings or {}
    routes: list[tuple[QueuedSink, bool, bool]] = []
    for name, (success, failure) in wanted.items():
        try:
            sink = _sink(name, settings, environ, config_dir, tracer_provider)
        except (ValueError, CallbackImportError, ProxyError) as exc:
            raise ConfigError([f"litellm_settings.callbacks: {exc}"]) from None
        if sink is not None:
            routes.append((sink, success, failure))
    return Callbacks(routes)


def _sink(name: str, settings: Mapping[str, Any], environ: Mapping[str, str], config_dir: Path | None,
          tracer_provider: Any) -> QueuedSink | None:
    lowered = name.lower()
    if lowered in ALWAYS_ON:
        return None
    if lowered == "webhook":
        return WebhookSink.from_settings(dict(settings.get("webhook") or {}))
    if lowered in OTEL_NAMES:
        conf = dict(settings.get("otel") or settings.get("opentelemetry") or {})
        if tracer_provider is not None:
            return OtelSink(tracer_provider)
        return OtelSink(tracer_provider_from_settings(conf, environ), owned=True)
    if ":" in name or "." in name:
        return CustomSink(load_object(name, config_dir), name)
    log.warning("callback '%s' is not available in rerank-proxy; ignored (available: webhook, otel, "
                "prometheus, or an import path 'package.module:Name')", name)
    return None
