"""Guards on client connections: a deadline for each request's head and body, and a cap on open connections.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but gives a client as long as it likes to
send a request: a connection that sends nothing, half a head, or one body byte every ten seconds keeps its
file descriptor and its memory for ever (slowloris). `GuardedHttpToolsProtocol` is uvicorn's httptools
protocol with three additions, configured from `general_settings` through the app (`ConnectionLimits`):

- `request_header_timeout`: from the connection's start (or the first byte of a keep-alive connection's
  next request) until the head is complete; then 408 and the connection is closed.
- `request_body_timeout`: from the end of the head until the whole body has arrived, trickled or not.
- `max_connections`: open connections per worker, kept below the file-descriptor limit; one more is
  answered 503 with Retry-After and closed at once, so that a flood of idle connections is refused
  instead of making `accept()` fail for everyone.

The deadlines are checked by one sweep over the worker's connections every tenth of the shorter one (0.1 to
1 s), not by timers armed and cancelled on every request: those cost ~3% of a small request's instructions
(bench/instructions.py).

The CLI raises the process's soft file-descriptor limit to its hard limit before it starts serving.
"""

from __future__ import annotations

import asyncio
import resource
import weakref
from dataclasses import dataclass, replace
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FD_RESERVE = 64
"""File descriptors kept for everything but client connections: listening sockets, database, Redis,
upstream connections, log files."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 4_096

    def within_fd_limit(self) -> ConnectionLimits:
        """These limits with `max_connections` below this process's soft file-descriptor limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        return replace(self, max_connections=max(1, min(self.max_connections, soft - FD_RESERVE)))


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft file-descriptor limit to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def limits_of(config: Any) -> ConnectionLimits:
    """The limits the app was built with (`app.state.connection_limits`), found through uvicorn's wrappers."""
    cached = getattr(config, "_rerank_proxy_limits", None)
    if cached is None:
        found, app = None, config.loaded_app
        for _ in range(16):
            found = getattr(getattr(app, "state", None), "connection_limits", None)
            if found is not None or not hasattr(app, "app"):
                break
            app = app.app
        cached = (found or ConnectionLimits()).within_fd_limit()
        config._rerank_proxy_limits = cached
    return cached


def _raw_response(status: bytes, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"message": message})
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n" + extra
            + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request-head and request-body deadlines and a connection cap.

    The deadlines cost a request nothing: no timer per request and no hook on the parser's callbacks. One
    `Sweeper` per worker looks at every connection each `tick` and reads its phase from uvicorn's own state;
    a connection whose phase has not moved on within its limit is answered 408 and closed.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = limits_of(self.config)
        if len(self.connections) > limits.max_connections:
            self._refuse(_raw_response(b"503 Service Unavailable", "the server has too many open connections "
                                       "(general_settings.max_connections); retry shortly", b"retry-after: 1\r\n"))
            return
        Sweeper.of(self.server_state, self.loop, limits).start()

    def phase(self) -> tuple[str, object] | None:
        """("head", cycle) while a request head is due (after connecting, or once a kept-alive connection's
        next request has begun), ("body", cycle) while a request's body is due; None otherwise (idle between
        requests, which uvicorn's keep-alive timeout covers, or being answered). The cycle tells one request
        from the next."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return None if self.timeout_keep_alive_task is not None else ("head", cycle)
        return ("body", cycle) if cycle.more_body else None

    def expire(self, seconds: float, what: str, setting: str) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the answer is on its way: nothing more to say
            return
        self._refuse(_raw_response(b"408 Request Timeout", f"the {what} did not arrive within {seconds:g} s "
                                   f"(general_settings.{setting})"))

    def _refuse(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()


class Sweeper:
    """The deadlines of one worker's connections, checked every `tick` seconds (a tenth of the shorter limit,
    between 0.1 and 1 s) while it has any. A phase counts from the first sweep that sees it, so a client gets
    at least its limit and is cut at most two ticks after it."""

    def __init__(self, connections: set[Any], loop: asyncio.AbstractEventLoop, limits: ConnectionLimits) -> None:
        self.connections = connections
        self.loop = loop
        self.limits = limits
        self.tick = min(1.0, max(0.1, min(limits.header_timeout, limits.body_timeout) / 10))
        self.seen: dict[Any, tuple[str, weakref.ref[Any] | None, float]] = {}
        """Connection → (phase, its request cycle, when a sweep first saw it)."""
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, server_state: Any, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits) -> Sweeper:
        sweeper = getattr(server_state, "_rerank_proxy_sweeper", None)
        if sweeper is None or sweeper.loop is not loop:
            sweeper = cls(server_state.connections, loop, limits)
            server_state._rerank_proxy_sweeper = sweeper
        return sweeper

    def start(self) -> None:
        if self.timer is None:
            self.timer = self.loop.call_later(self.tick, self.sweep)

    def sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        seen, current = self.seen, {}
        limits = self.limits
        for connection in list(self.connections):
            phase = connection.phase() if isinstance(connection, GuardedHttpToolsProtocol) else None
            if phase is None:
                continue
            what, cycle = phase
            before = seen.get(connection)
            if before is None or before[0] != what or (before[1]() if before[1] is not None else None) is not cycle:
                current[connection] = (what, weakref.ref(cycle) if cycle is not None else None, now)
                continue
            current[connection] = before
            if what == "head" and now - before[2] >= limits.header_timeout:
                connection.expire(limits.header_timeout, "request head", "request_header_timeout")
            elif what == "body" and now - before[2] >= limits.body_timeout:
                connection.expire(limits.body_timeout, "request body", "request_body_timeout")
        self.seen = current
        if self.connections:
            self.timer = self.loop.call_later(self.tick, self.sweep)
