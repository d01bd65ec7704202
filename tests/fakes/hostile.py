"""A hostile upstream: a small asyncio server on 127.0.0.1 (ephemeral port, its own thread) whose answer is
scripted by the request path. It writes raw bytes, so it can do what no well-behaved server framework would:
endless bodies, huge headers, decompression bombs, bytes after the end of a response, hanging up after a
request was read, never answering."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import cache

MiB = 1 << 20
OK_BODY = b'{"ok":true}'


@cache
def bomb(encoding: str, size: int) -> bytes:
    """`size` zero bytes gzip- or deflate-compressed to about size/1000: identical fully flushed 1 MiB blocks
    repeated (quick to build), then the real trailer, so the stream is valid to its end."""
    chunk = bytes(MiB)
    gzip = encoding == "gzip"
    compressor = zlib.compressobj(9, zlib.DEFLATED, (zlib.MAX_WBITS | 16) if gzip else zlib.MAX_WBITS)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    check = zlib.crc32 if gzip else zlib.adler32
    value = check(chunk)
    for _ in range(size // MiB - 1):
        value = check(chunk, value)
    last = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty final block
    trailer = struct.pack("<II", value, size & 0xFFFFFFFF) if gzip else struct.pack(">I", value)
    return first + block * (size // MiB - 1) + last + trailer


class Connection:
    def __init__(self, server: HostileUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer

    async def request(self) -> str:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        path = head.split(b" ", 2)[1].decode()
        self.server.seen[path] += 1
        return path

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, body: bytes = OK_BODY, headers: bytes = b"") -> None:
        await self.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), headers, body))

    async def forever(self, piece: bytes) -> None:
        while True:
            await self.send(piece)


Script = Callable[[Connection], Awaitable[None]]


async def _big(c: Connection) -> None:  # 200 MiB announced, sent until the client hangs up
    await c.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (200 * MiB))
    await c.forever(b"x" * MiB)


async def _unannounced(c: Connection) -> None:  # the same without content-length: ends when the connection does
    await c.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
    await c.forever(b"x" * MiB)


async def _endless(c: Connection) -> None:  # a chunked stream that never ends
    await c.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await c.forever(b"%x\r\n%s\r\n" % (MiB, b"x" * MiB))


async def _header(c: Connection) -> None:  # one 64 MiB header
    await c.send(b"HTTP/1.1 200 OK\r\nx-huge: ")
    for _ in range(64):
        await c.send(b"a" * MiB)
    await c.reply()


async def _many_headers(c: Connection) -> None:  # a million small headers
    await c.send(b"HTTP/1.1 200 OK\r\n")
    for batch in range(256):
        await c.send(b"".join(b"x-%d: 1\r\n" % i for i in range(batch * 4096, (batch + 1) * 4096)))
    await c.reply()


def _bomb(encoding: str) -> Script:
    async def script(c: Connection) -> None:  # 1 MiB that inflates to 1 GiB
        body = bomb(encoding, 1 << 30)
        await c.send(b"HTTP/1.1 200 OK\r\ncontent-encoding: %s\r\ncontent-length: %d\r\n\r\n" % (
            encoding.encode(), len(body)))
        await c.send(body)
        await c.reader.read()

    return script


async def _leftover(c: Connection) -> None:  # a second, forged answer after the first one's content-length
    forged = b'{"forged":1}'
    await c.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%sHTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                 % (len(OK_BODY), OK_BODY, len(forged), forged))


async def _leftover_later(c: Connection) -> None:  # the same, the forged answer a moment later
    await c.reply()
    await asyncio.sleep(0.05)
    await c.send(b'HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{"forged":1}')
    c.server.forged.set()


async def _drop_second(c: Connection) -> None:  # answers once; the next request on the connection: hang up
    await c.reply()
    await c.request()
    c.writer.transport.abort()
    raise ConnectionResetError


async def _hang(c: Connection) -> None:  # reads the request, never answers
    await c.reader.read()


async def _trickle(c: Connection) -> None:  # one byte of the body every 50 ms
    await c.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
    while True:
        await asyncio.sleep(0.05)
        await c.send(b" ")


PAYLOAD = b'{"results":[' + b",".join(b'{"index":%d,"relevance_score":0.5}' % i for i in range(200)) + b"]}"
"""A well-formed answer the framing and encoding paths send."""


def _encoded(encoding: bytes, encode: Callable[[bytes], bytes]) -> Script:
    async def script(c: Connection) -> None:
        await c.reply(encode(PAYLOAD), b"content-encoding: " + encoding + b"\r\n")

    return script


async def _chunked(c: Connection) -> None:
    half = len(PAYLOAD) // 2
    await c.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                 % (half, PAYLOAD[:half], len(PAYLOAD) - half, PAYLOAD[half:]))


async def _close_delimited(c: Connection) -> None:
    await c.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + PAYLOAD)
    raise ConnectionResetError  # the end of the body is the end of the connection


async def _interim(c: Connection) -> None:
    await c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    await c.reply(PAYLOAD)


async def _close_after(c: Connection) -> None:  # keep-alive announced, then an idle timeout closes it
    await c.reply(headers=b"connection: keep-alive\r\n")
    await asyncio.sleep(0.05)
    raise ConnectionResetError


async def _wide_headers(c: Connection) -> None:  # 2 KiB of headers: within the default limit
    await c.reply(headers=b"".join(b"x-wide-%d: %s\r\n" % (i, b"w" * 100) for i in range(20)))


SCRIPTS: dict[str, Script] = {
    "/wide-headers": _wide_headers,
    "/gzip": _encoded(b"gzip", gzip.compress), "/deflate": _encoded(b"deflate", zlib.compress),
    "/raw-deflate": _encoded(b"deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
    "/chunked": _chunked, "/close-delimited": _close_delimited, "/interim": _interim, "/close-after": _close_after,
    "/big": _big, "/unannounced": _unannounced, "/endless": _endless, "/header": _header,
    "/many-headers": _many_headers, "/gzip-bomb": _bomb("gzip"), "/deflate-bomb": _bomb("deflate"),
    "/leftover": _leftover, "/leftover-later": _leftover_later, "/drop-second": _drop_second, "/hang": _hang,
    "/trickle": _trickle,
}


class HostileUpstream:
    """Paths in SCRIPTS misbehave; any other path answers `OK_BODY`. Connections are kept alive between
    answers. `seen` counts requests per path."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.seen: Counter[str] = Counter()
        self.connections = 0
        self.forged = threading.Event()
        """Set once /leftover-later has written its forged answer."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    def start(self) -> HostileUpstream:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context), self._loop)
        self._server = started.result(10)
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = Connection(self, reader, writer)
        try:
            while True:
                path = await connection.request()
                script = SCRIPTS.get(path)
                if script is None:
                    await connection.reply()
                else:
                    await script(connection)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError,
                ssl.SSLError):
            pass  # the client hung up, or the server stops: a cancelled handler would be logged as an error
        finally:
            writer.close()
