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

The CLI raises the process's soft file-descriptor limit to its hard limit before it starts serving.
"""

from __future__ import annotations

import asyncio
import resource
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
    """uvicorn's httptools protocol with request-head and request-body deadlines and a connection cap."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits_of(config)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_raw_response(b"503 Service Unavailable", "the server has too many open connections "
                                       "(general_settings.max_connections); retry shortly", b"retry-after: 1\r\n"))
            return
        self._arm(self.limits.header_timeout, "request head", "request_header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request on a keep-alive connection
            self._arm(self.limits.header_timeout, "request head", "request_header_timeout")

    def on_headers_complete(self) -> None:
        self._arm(self.limits.body_timeout, "request body", "request_body_timeout")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, what: str, setting: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what, setting)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str, setting: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the answer is on its way: nothing more to say
            return
        self._refuse(_raw_response(b"408 Request Timeout", f"the {what} did not arrive within {seconds:g} s "
                                   f"(general_settings.{setting})"))

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        self.transport.write(response)
        self.transport.close()
