"""`Telemetry`: the one engine observer behind metrics, the request log and logging callbacks.

The engine calls `on_call` once per finished call; it builds the call's record once and hands it to each
part, and a failure in one part never skips the others or reaches the request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..callbacks import Callbacks, build_callbacks
from ..config_loading import Settings
from ..engine import Call
from .logs import hand_over
from .metrics import MULTIPROC_ENV, Metrics
from .record import call_record

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(self, settings: Settings, *, tracer_provider: Any = None) -> None:
        litellm = settings.config.litellm_settings
        general = settings.general
        self.metrics = Metrics(multiprocess_dir=settings.environ.get(MULTIPROC_ENV) or None,
                               end_user_labels=not litellm.disable_end_user_cost_tracking_prometheus_only,
                               end_user_series=general.metrics_end_user_series)
        config_dir = Path(settings.source).resolve().parent if settings.source else None
        self.callbacks: Callbacks = build_callbacks(litellm, settings.environ, config_dir=config_dir,
                                                    tracer_provider=tracer_provider)
        self.metrics_token = general.metrics_token
        self.metrics_require_auth = bool(general.metrics_require_auth or litellm.require_auth_for_metrics_endpoint
                                         or general.metrics_token)

    def on_call(self, call: Call) -> None:
        record = call_record(call)
        try:
            self.metrics.observe(call, record)
        except Exception:
            log.exception("metrics update failed")
        try:
            hand_over(record)
        except Exception:
            log.exception("request log failed")
        if self.callbacks:
            self.callbacks.submit(record, call)

    async def start(self, *, writer: Any = None, router: Any = None) -> None:
        self.metrics.watch(writer=writer, router=router, sinks=self.callbacks.sinks)
        await self.callbacks.start()
        await self.metrics.start()

    async def stop(self) -> None:
        """Deliver queued callback events, then stop sampling; the spend writer is drained by its owner."""
        await self.callbacks.stop()
        await self.metrics.stop()
