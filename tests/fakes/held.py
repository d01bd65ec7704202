"""A fake Cohere whose answers can be slowed (`delay`) or held until released (`hold()` / `release()`).

Routing tests use it to make one deployment slower than another (latency-based routing) or to keep calls
in flight on purpose (least-busy routing).
"""

from __future__ import annotations

import asyncio
import threading

from starlette.requests import Request
from starlette.responses import Response

from .cohere import FakeCohere


class HeldCohere(FakeCohere):
    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.arrived = 0
        """Calls received, counted on arrival (before any delay or hold)."""
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        """Calls arriving from now on wait (counted in `arrived`, unanswered) until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def reset(self) -> None:
        super().reset()
        self.delay = 0.0
        self.arrived = 0
        self._open.set()

    async def _handle(self, request: Request) -> Response:
        with self._lock:
            self.arrived += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        while not self._open.is_set():
            await asyncio.sleep(0.01)
        return await super()._handle(request)
