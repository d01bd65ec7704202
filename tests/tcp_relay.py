"""A TCP relay on loopback that a test can freeze: the database stops answering without refusing anything.

`freeze()` stops forwarding bytes both ways and leaves new connections accepted but unanswered, as a hung
database host (or a partition with the sockets still open) does; `thaw()` resumes; `refuse()` closes every
connection at once and accepts none, as a stopped database does. Runs its own asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thawed = asyncio.Event()
        self._refusing = False
        self._connections: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def freeze(self) -> None:
        self._call(self._thawed.clear)

    def thaw(self) -> None:
        self._refusing = False
        self._call(self._thawed.set)

    def refuse(self) -> None:
        self._refusing = True
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)

    def _call(self, fn) -> None:
        """Run `fn` on the relay's loop and return once it has run (callbacks run in the order scheduled)."""
        self._loop.call_soon_threadsafe(fn)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop).result(10)

    async def _listen(self) -> int:
        self._thawed.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        self._connections.add(writer)
        await self._thawed.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._connections.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._thawed.wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._connections.discard(writer)
