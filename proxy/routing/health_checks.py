"""Health checks: a tiny rerank call (one short document) against a deployment.

`GET /health` probes every deployment on demand; with `general_settings.background_health_checks` a
task does it every `health_check_interval` seconds. The router feeds the results into cooldowns (a
failure counts like a failed request, a success ends a cooldown early).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ProxyError, UpstreamTimeoutError
from ..invoke import invoke
from ..providers import Deployment
from ..request import make_request
from ..transport import Transport

log = logging.getLogger("proxy.routing")

PROBE = make_request("health check", ["ok"])


@dataclass(frozen=True, slots=True)
class ProbeResult:
    alias: str
    deployment: Deployment
    error: ProxyError | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> dict[str, Any]:
        """JSON-safe, without secrets: no key, no credentials or query string in the base URL."""
        d = self.deployment
        info: dict[str, Any] = {"model_name": self.alias, "model": d.name, "model_id": d.id,
                                "latency_ms": round(self.latency_ms, 3)}
        if d.api_base:
            info["api_base"] = public_url(d.api_base)
        if self.error is not None:
            message = self.error.message
            if d.api_key and d.api_key in message:
                message = message.replace(d.api_key, "<api_key>")
            info["error"] = f"{self.error.kind}: {message}"
        return info


def public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def probe(alias: str, deployment: Deployment, transport: Transport, timeout: float) -> ProbeResult:
    started = time.perf_counter()
    error: ProxyError | None = None
    limit = min(deployment.timeout, timeout)
    try:
        async with asyncio.timeout(limit):
            await invoke(PROBE, deployment, transport)
    except ProxyError as exc:
        error = exc
    except TimeoutError:
        error = UpstreamTimeoutError(f"health check timed out after {limit:g}s", provider=deployment.provider.name)
    return ProbeResult(alias, deployment, error, (time.perf_counter() - started) * 1000)


class BackgroundHealthChecks:
    """Probes every deployment now and then every `interval` seconds, until stopped."""

    def __init__(self, check: Callable[[], Awaitable[list[ProbeResult]]], interval: float):
        self.check = check
        """`Router.check_health`: probes every deployment and feeds the results into its cooldowns."""
        self.interval = max(interval, 0.05)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rerank-proxy-health-checks")

    async def _run(self) -> None:
        while True:
            try:
                for result in await self.check():
                    if result.error is not None:
                        log.warning("health check: deployment %s is unhealthy (%s)", result.deployment.id,
                                    result.error.kind)
            except Exception:  # a failed round must not end the checks
                log.exception("health check round failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
