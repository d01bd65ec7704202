"""What every fake upstream shares: request recording, strict field checks, scripted faults, scoring.

Faults are scripted two ways: `fake.fail_next("500", times=2)` from the test, or a model name of the
form `fault-<kind>` in the request. Kinds: an HTTP status ("400", "401", "429", "500", "503", ...),
"timeout" (answers after `slow_seconds`, or as soon as the client hangs up), "malformed" (200 with a body
that is not the provider's).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .server import LiveServer

_WORD = re.compile(r"\w+")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query_string: str = ""


def overlap_score(query: str, text: str) -> float:
    """A deterministic relevance score in [0, 1]: the share of query words in the text, length-damped."""
    q = set(_WORD.findall(query.lower()))
    words = _WORD.findall(text.lower())
    if not q or not words:
        return 0.0
    hits = len(q & set(words))
    return round(hits / len(q) * (0.5 + 0.5 / (1 + len(words) / 50)), 6)


class Reject(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


class FakeUpstream:
    """Subclass per provider: set `routes`, implement `answer` and `error_body`."""

    provider = "fake"
    api_key = "test-key"
    slow_seconds = 3.0

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self.server: LiveServer | None = None

    # -- per provider ---------------------------------------------------------------------------
    def route_paths(self) -> list[str]:
        raise NotImplementedError

    def check_auth(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "invalid api token")

    def answer(self, path: str, body: Any, request: Request) -> Response:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"message": message}

    def model_of(self, path: str, body: Any) -> str:
        return body.get("model", "") if isinstance(body, dict) else ""

    def malformed_body(self) -> Any:
        return {"unexpected": True}

    # -- shared machinery -----------------------------------------------------------------------
    def fail_next(self, fault: str, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(self.error_body(status, message), status_code=status, headers=headers)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Recorded(request.method, request.url.path, dict(request.headers), body,
                                      request.url.query))
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        model = self.model_of(request.url.path, body)
        if fault is None and model.startswith("fault-"):
            fault = model.removeprefix("fault-")
        if fault is not None:
            return await self._play(fault, request)
        try:
            self.check_auth(request)
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                raise Reject(400, "content-type must be application/json")
            if not isinstance(body, dict) and not isinstance(body, list):
                raise Reject(400, "invalid JSON body")
            return self.answer(request.url.path, body, request)
        except Reject as rejected:
            return self.error(rejected.status, rejected.message)

    async def _play(self, fault: str, request: Request) -> Response:
        if fault == "timeout":
            # Stop once the client has gone, so stopping the server never waits out the delay.
            deadline = asyncio.get_running_loop().time() + self.slow_seconds
            while asyncio.get_running_loop().time() < deadline and not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return self.error(504, "too slow")
        if fault == "malformed":
            return JSONResponse(self.malformed_body())
        if fault == "notjson":
            return Response(b"<html>oops</html>", media_type="text/html")
        status = int(fault)
        headers = {"retry-after": "1"} if status == 429 else None
        return self.error(status, f"scripted failure {status}", headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(p, self._handle, methods=["POST"]) for p in self.route_paths()])

    def start(self) -> FakeUpstream:
        self.server = LiveServer(self.app()).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def require_fields(body: dict[str, Any], required: set[str], allowed: set[str]) -> None:
    """Reject bodies that miss a required field or carry one the provider does not know."""
    missing = required - body.keys()
    if missing:
        raise Reject(400, f"missing field(s): {', '.join(sorted(missing))}")
    unknown = body.keys() - allowed - required
    if unknown:
        raise Reject(400, f"unknown field(s): {', '.join(sorted(unknown))}")


def ranked(query: str, texts: list[str], top_n: int | None = None) -> list[tuple[int, float]]:
    scores = sorted(((i, overlap_score(query, t)) for i, t in enumerate(texts)), key=lambda p: (-p[1], p[0]))
    return scores[:top_n] if top_n else scores
