"""A real HTTP endpoint on 127.0.0.1 that records what the webhook callback POSTs to it."""

from __future__ import annotations

import json
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import LiveServer


class WebhookReceiver:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.raw: list[bytes] = []
        self._fail = 0
        self._lock = threading.Lock()
        self.server = LiveServer(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))

    def fail_next(self, times: int) -> None:
        """Answer the next `times` POSTs with a 503 (without recording them)."""
        with self._lock:
            self._fail += times

    @property
    def url(self) -> str:
        return self.server.url + "/hook"

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for batch in self.batches for event in batch]

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            if self._fail:
                self._fail -= 1
                return JSONResponse({"message": "scripted failure"}, status_code=503)
            self.raw.append(body)
            self.batches.append(json.loads(body))
            self.headers.append(dict(request.headers))
        return JSONResponse({"ok": True})

    def __enter__(self) -> WebhookReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
