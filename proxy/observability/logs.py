"""Structured logs: one JSON line per HTTP request on the `proxy.access` logger, and the process's log setup.

The line for a /rerank call carries the request id, key alias, end-user, alias, deployment, status, latency,
overhead, cost, error class and whether a fallback answered; never the query, the documents or a key. Paths
are logged without their query string (`/key/info?key=...` would carry a key).

`RequestLogMiddleware` is pure ASGI (no `BaseHTTPMiddleware`: that costs a task group per request). It
hands the engine observer a slot through a context variable; the engine fills it with the call's record,
and the middleware writes one line when the response is done — so requests refused before the engine
(401, 413, unknown paths) get a line too, and a /rerank call never gets two.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from starlette.types import Receive, Scope, Send

from .record import now, refused_record

ACCESS_LOGGER = "proxy.access"
access_log = logging.getLogger(ACCESS_LOGGER)

RERANK_PATHS = frozenset({"/rerank", "/v1/rerank", "/v2/rerank"})
QUIET_PREFIXES = ("/health", "/metrics")  # probes and scrapes: DEBUG, so they do not flood the log


class Slot:
    __slots__ = ("record",)

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None


current_slot: ContextVar[Slot | None] = ContextVar("rerank_proxy_log_slot", default=None)


def dumps(record: dict[str, Any]) -> str:
    return orjson.dumps(record, default=str).decode()


def write_record(record: dict[str, Any], level: int = logging.INFO) -> None:
    if not access_log.isEnabledFor(level):
        return
    handlers = access_log.handlers
    if len(handlers) == 1 and type(handlers[0]) is LineWriter and level >= handlers[0].level and not access_log.filters:
        handlers[0].put(dumps(record))  # our writer alone: skip building a LogRecord it would only unwrap
    else:
        access_log.log(level, dumps(record))


def hand_over(record: dict[str, Any]) -> None:
    """Engine side: give the record to the request's middleware, or write it now when there is none."""
    slot = current_slot.get()
    if slot is not None:
        slot.record = record
    else:
        write_record(record)


class RequestLogMiddleware:
    """Writes one `proxy.access` line per HTTP request; counts in-flight and refused /rerank requests."""

    def __init__(self, app: Any, metrics: Any = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        slot = Slot()
        token = current_slot.set(slot)
        status = 500
        metrics = self.metrics

        async def send_and_watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if metrics is not None:
            metrics.serving += 1
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            current_slot.reset(token)
            if metrics is not None:
                metrics.serving -= 1
            try:
                self._finish(scope, slot, status, started)
            except Exception:  # logging never fails a request
                logging.getLogger(__name__).exception("request log failed")

    def _finish(self, scope: Scope, slot: Slot, status: int, started: float) -> None:
        if slot.record is not None:
            write_record(slot.record)
            return
        path = scope.get("path", "")
        latency_ms = (time.perf_counter() - started) * 1000
        if path in RERANK_PATHS:
            record = refused_record(status, _request_id(scope), latency_ms)
            if self.metrics is not None:
                self.metrics.observe_refused(record)
            write_record(record)
            return
        level = logging.DEBUG if path.startswith(QUIET_PREFIXES) else logging.INFO
        if access_log.isEnabledFor(level):
            write_record({"event": "http", "time": now(), "method": scope.get("method"), "path": path, "status": status,
                          "latency_ms": round(latency_ms, 3)}, level)


def _request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return value.decode("latin-1")[:128]
    return None


# -- process-wide setup (CLI and uvicorn workers only; tests and embedders keep their own) --------------

class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}` per line (LiteLLM's `json_logs`)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return dumps(line)


class OneLineFormatter(logging.Formatter):
    """Plain text with the message kept on its line: a newline inside a message (text someone else wrote) is
    escaped, so it cannot forge a log line; tracebacks still follow on their own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")


_OURS = "_rerank_proxy_handler"


def configure_logging(*, debug: bool = False, json_logs: bool = False, stream: TextIO | None = None) -> None:
    """Root → stderr (plain text, or JSON with `json_logs`); `proxy.access` → stderr as bare JSON lines.

    Access lines are written by a background thread (`LineWriter`), so the event loop never waits on
    stderr. Safe to call again (the CLI calls it, then each uvicorn worker): earlier handlers are replaced.
    """
    stream = stream or sys.stderr
    level = logging.DEBUG if debug else logging.INFO
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    plain = logging.StreamHandler(stream)
    plain.setFormatter(JsonFormatter() if json_logs else
                       OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(plain, _OURS, True)
    root.addHandler(plain)
    root.setLevel(level)

    for handler in [h for h in access_log.handlers if getattr(h, _OURS, False)]:
        access_log.removeHandler(handler)
        handler.close()
    lines = LineWriter(stream)
    setattr(lines, _OURS, True)
    access_log.addHandler(lines)
    access_log.setLevel(level)
    access_log.propagate = False


class LineWriter(logging.Handler):
    """Puts each record's message on a queue; a daemon thread writes them out, many lines per write.

    Cheaper on the request path than `QueueHandler` (no record copy, no formatting) and the event loop
    never waits on the stream. `close()` (also run at exit) writes what is queued.
    """

    PAUSE = 0.02

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_forever, name="access-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.put(record.getMessage())

    def put(self, line: str) -> None:
        self._lines.put(line)

    def _write_forever(self) -> None:
        while True:
            line = self._lines.get()
            batch = []
            while line is not None:
                batch.append(line)
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self.stream.write("\n".join(batch) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
            if line is None:
                return
            time.sleep(self.PAUSE)  # let lines gather: few wake-ups, so little contention for the GIL

    def close(self) -> None:
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join(timeout=5)
        atexit.unregister(self.close)
        super().close()
