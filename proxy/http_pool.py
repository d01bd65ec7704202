"""A lean HTTP/1.1 keep-alive client for upstream calls: asyncio for sockets and TLS, httptools for parsing.

Why not aiohttp's client here: an upstream rerank call is one POST of bytes and one response of bytes over a
kept-alive connection, and in the benchmark (bench/) aiohttp's general machinery (sessions, request and response
objects, payload registry, timer handles, tracing hooks) was a quarter of the proxy's CPU per request. The
parser is httptools (llhttp, the one uvicorn serves with) and TLS is the event loop's; this module adds only
the pool. Environment proxies are not handled here: `transport.server_transport` picks aiohttp when any are set.

It still earns its place with the limits below (bench/run.py, one run with the limits in, floors and an A/B
of the proxy against main without them, medians of 3 alternating rounds on a busy 2-core VM): CPU per
request 0.224 ms at 4 documents and 0.357 ms at 100 for this pool's floor, against pyreqwest's 0.270 / 0.461
and aiohttp's 0.372 / 0.573 (17-23% less than pyreqwest, 38-40% less than aiohttp); the proxy on it took
0.278 / 0.512 ms against 0.294 / 0.658 without the limits: no cost above the run's noise. A second,
floors-only run: 0.257 / 0.556 ms against pyreqwest's 0.356 / 0.710 and aiohttp's 0.377 / 0.865.

Behaviour a caller can rely on: at most `max_connections` requests in flight and `max_connections_per_host`
to one host (others wait for a slot of their own host, inside their timeout: host_limits.py); idle
connections are reused newest first and dropped after `keepalive_timeout`; a request is never sent twice: a
reused connection that closes without an answer after our request was written is an error (the upstream may
have received it and would bill it twice), and only a connection already seen closed before writing is
skipped for a new one; headers over `limits.max_header_bytes` and bodies over the request's `body_limit`
are refused at once and their connection dropped (http_body.py); bytes after the end of a response close
the connection instead of being read as the next answer; a timeout or a broken response closes its
connection; gzip and deflate bodies are decoded in bounded steps; redirects are returned, not followed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from .host_limits import HostLimits
from .http_body import ProtocolError, ResponseLimits, ResponseTooLargeError, decoded

Headers = Iterable[tuple[str, str]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class StaleConnectionError(ConnectionError):
    """A reused connection closed before any byte of the response came back (the request may have arrived)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL split once into what a request line and the pool need."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    authority: str
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot send to {url!r}: only http:// and https:// URLs with a host")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port == (443 if tls else 80) else f"{shown}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls((parts.scheme, host, port), host, port, tls, authority, path)


class _Connection(asyncio.Protocol):
    """One socket; parses one response at a time into `(status, headers, body)` for the waiting request,
    within the limits `start` was given."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.received = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._status = 0
        self._keep_alive = True
        self._head_size = 0  # bytes fed while the head is incomplete
        self._header_bytes = 0  # names and values parsed so far
        self._body_size = 0
        self._header_limit = 0
        self._body_limit = 0
        self._answered = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self._answered:
            self.close()  # bytes nobody asked for: they must not be read as the next call's answer
            return
        self.received = True
        head_open = not self._status
        if head_open:
            self._head_size += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            self._fail(refused if isinstance(refused, ProtocolError) else ProtocolError(str(exc)))
            return
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"unreadable HTTP response ({exc})"))
            return
        if not self._status and self._head_size > self._header_limit:  # all of it head, and still no end
            self._fail(self._headers_too_large())

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._status and self._delimited_by_close():
            self._complete()  # a body without length or chunking ends when the connection does
        elif not self.received:
            waiter.set_exception(StaleConnectionError("the connection closed before a response"))
        else:
            waiter.set_exception(exc or ConnectionResetError("the connection closed mid-response"))

    # -- httptools callbacks (an exception raised here stops the parser: see data_received) ---------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._header_limit:
            raise self._headers_too_large()
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()
        for name, value in self._headers:
            if name.lower() == b"content-length" and value.strip().isdigit() and int(value) > self._body_limit:
                raise ResponseTooLargeError(f"the upstream announced {int(value)} bytes, more than our limit of "
                                            f"{self._body_limit} for this request")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._body_limit:
            raise ResponseTooLargeError(f"the upstream's answer is larger than {self._body_limit} bytes, "
                                        "our limit for this request")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answered:  # a second response in the bytes of the first (no on_message_begin hook per call)
            self._keep_alive = False
            raise ProtocolError("the upstream sent bytes after the end of its response")
        if not 100 <= self._status < 200:
            self._complete()
        else:  # an interim response (100 Continue): the real one follows on the same connection
            self._headers, self._body, self._status, self._body_size = [], [], 0, 0

    # -- used by the pool ----------------------------------------------------------------------------
    def start(self, payload: bytes, header_limit: int, body_limit: int) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = self._answered = False
        self._headers, self._body, self._status = [], [], 0
        self._head_size = self._header_bytes = self._body_size = 0
        self._header_limit, self._body_limit = header_limit, body_limit
        self.transport.write(payload)
        return self.waiter

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _delimited_by_close(self) -> bool:
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _complete(self) -> None:
        self._answered = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            headers, self._headers, self._body = self._headers, [], []  # a response after it starts afresh
            waiter.set_result((self._status, headers, body))

    def _headers_too_large(self) -> ResponseTooLargeError:
        return ResponseTooLargeError(f"the upstream's headers are larger than {self._header_limit} bytes")

    def _fail(self, exc: Exception) -> None:
        self._body = []  # the memory goes back now, not when the connection object does
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port); `max_connections` requests in flight at most, and
    `max_connections_per_host` to one host."""

    def __init__(self, *, max_connections: int = 1000, max_connections_per_host: int = 500,
                 keepalive_timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None,
                 limits: ResponseLimits | None = None):
        self.max_connections = max_connections
        self.keepalive_timeout = keepalive_timeout
        self.limits = limits or ResponseLimits()
        self._ssl = ssl_context
        self._slots = HostLimits(max_connections, max_connections_per_host)
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._targets: dict[str, Target] = {}
        self.opened = 0
        """Connections opened so far (tests and the benchmark read it)."""

    def target(self, url: str) -> Target:
        found = self._targets.get(url)
        if found is None:
            if len(self._targets) > 1024:  # URLs come from config: a handful; bounded all the same
                self._targets.clear()
            found = self._targets[url] = Target.parse(url)
        return found

    async def request(self, method: str, url: str, headers: Headers, body: bytes | None,
                      timeout: float | None, *, documents: int = 0) -> Answer:
        """Send one request; the response's status, raw headers and (decoded) body.

        `timeout` covers the whole call: waiting for a slot, connecting, sending, reading and decoding.
        `documents` (how many the answer ranks) sizes the body limit (`ResponseLimits.body_limit`).
        """
        target = self.target(url)
        payload = _head(method, target, headers, body) + (body or b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        slots = self._slots
        host = slots.hosts.get(target.key) or slots.host(target.key)
        if host.free > 0 and slots.total.free > 0:  # the common case, without a coroutine
            host.free -= 1
            slots.total.free -= 1
        else:
            host = await slots.take(target.key, deadline)
        try:
            body_limit = self.limits.body_limit(documents, len(body or b""))
            connection = self._reuse(target.key)
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._open(target)
            status, raw_headers, content = await self._exchange(connection, target, payload, deadline, body_limit)
        finally:
            slots.give_back(host)
        for name, value in raw_headers:
            if name.lower() == b"content-encoding":
                content = await decoded(content, value.decode("latin-1"), body_limit, deadline)
        return status, raw_headers, content

    async def _exchange(self, connection: _Connection, target: Target, payload: bytes,
                        deadline: float | None, body_limit: int) -> Answer:
        """One request on one connection. The deadline is a timer on the response future: cheaper per call
        than `asyncio.timeout`'s task cancellation, and the connection is closed either way."""
        waiter = connection.start(payload, self.limits.max_header_bytes, body_limit)
        timer = None if deadline is None else asyncio.get_running_loop().call_at(deadline, _expire, waiter)
        try:
            answer = await waiter
        except BaseException:
            connection.close()  # a timeout or cancellation leaves a response half read
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if connection.reusable:
            connection.idle_since = time.monotonic()
            idle = self._idle.get(target.key)
            if idle is None:
                idle = self._idle[target.key] = deque()
            if len(idle) < self.max_connections:
                idle.append(connection)
            else:
                connection.close()
        else:
            connection.close()
        return answer

    def _reuse(self, key: tuple[str, str, int]) -> _Connection | None:
        """The newest idle connection still open. One seen closed is skipped: the request was never written
        to it, so going to a new connection sends it once."""
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_allowed = time.monotonic() - self.keepalive_timeout
        while idle:
            connection = idle.pop()  # newest first: the warm ones stay warm, the old ones age out
            if connection.idle_since >= oldest_allowed and connection.reusable:
                return connection
            connection.close()
        return None

    async def _open(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if target.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        _, connection = await loop.create_connection(
            _Connection, target.host, target.port, ssl=context, server_hostname=target.host if context else None)
        self.opened += 1
        return connection

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no complete response before the deadline"))


def _head(method: str, target: Target, headers: Headers, body: bytes | None) -> bytes:
    """Request line and headers. Host, Content-Length and Accept-Encoding are ours unless given."""
    lines = [f"{method} {target.path} HTTP/1.1\r\n"]
    given = set()
    for name, value in headers:
        lower = name.lower()
        if lower in ("content-length", "transfer-encoding", "connection"):
            continue  # framing is ours: the body is sent whole
        given.add(lower)
        lines.append(f"{name}: {value}\r\n")
    if "host" not in given:
        lines.append(f"host: {target.authority}\r\n")
    if "accept-encoding" not in given:
        lines.append("accept-encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body or b'')}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    if head.count("\n") != len(lines) or head.count("\r") != len(lines):
        raise ValueError("a header name or value contains a line break")
    return head.encode("latin-1")


__all__ = ["ConnectionPool", "ProtocolError", "ResponseTooLargeError", "StaleConnectionError", "Target"]
