"""The generic HTTP webhook callback: batches of events POSTed as a JSON array.

Config (`litellm_settings.callback_settings.webhook`): `url` (required), `headers` (values may be
`os.environ/NAME`), `batch_size` (100), `flush_interval` seconds (1.0), `max_queue` (10000), `max_retries`
(5), `timeout` seconds per POST (10), `drain_timeout` seconds at shutdown (10). Connection errors, timeouts,
429 and 5xx are retried with backoff; any other 4xx drops the batch (it would fail again).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .queue import DeliveryError, QueuedSink

DEFAULTS = {"batch_size": 100, "flush_interval": 1.0, "max_queue": 10_000, "max_retries": 5, "timeout": 10.0,
            "drain_timeout": 10.0}
KNOWN = {"url", "headers", *DEFAULTS}


class WebhookSink(QueuedSink):
    name = "webhook"

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None, **queueing: Any) -> None:
        super().__init__(**queueing)
        self.url = url
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, conf: dict[str, Any]) -> WebhookSink:
        unknown = set(conf) - KNOWN
        if unknown:
            raise ValueError(f"callback_settings.webhook: unknown key(s) {', '.join(sorted(unknown))}")
        if not conf.get("url"):
            raise ValueError("callback_settings.webhook.url is required for the webhook callback")
        options = {**DEFAULTS, **{k: v for k, v in conf.items() if k in DEFAULTS}}
        headers = {str(k): str(v) for k, v in (conf.get("headers") or {}).items()}
        return cls(str(conf["url"]), headers=headers, timeout=float(options.pop("timeout")),
                   batch_size=int(options["batch_size"]), flush_interval=float(options["flush_interval"]),
                   max_queue=int(options["max_queue"]), max_retries=int(options["max_retries"]),
                   drain_timeout=float(options["drain_timeout"]))

    async def open(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, batch: list[dict[str, Any]]) -> None:
        assert self._client is not None
        body = json.dumps(batch, separators=(",", ":"), default=str).encode()
        response = await self._client.post(self.url, content=body, headers=self.headers)
        if response.status_code >= 300:
            status = response.status_code
            raise DeliveryError(f"webhook answered HTTP {status}", retryable=status == 429 or status >= 500)

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, DeliveryError):
            return exc.retryable
        return isinstance(exc, httpx.TransportError)
