"""The server's upstream pool (proxy/http_pool.py) on the wire: keep-alive reuse, framing (length, chunked,
close-delimited, interim 100), compression, stale and broken connections, timeouts, the connection limit,
header injection and TLS. Each case runs a raw asyncio server that writes exactly the bytes under test."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import Awaitable, Callable

import pytest
import trustme

import proxy
from proxy.http_pool import ConnectionPool, ProtocolError, StaleConnectionError
from proxy.providers import UpstreamRequest
from proxy.transport import PoolTransport

Handler = Callable[["Peer"], Awaitable[None]]


class Peer:
    """One accepted connection: read requests, write raw responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def request(self) -> tuple[bytes, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head, await self.reader.readexactly(length)

    async def reply(self, body: bytes = b"{}", *, headers: bytes = b"", status: bytes = b"200 OK") -> None:
        self.writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n"
                          + headers + b"\r\n" + body)
        await self.writer.drain()


class RawServer:
    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None):
        self.handler, self.ssl_context = handler, ssl_context
        self.connections = 0
        self.heads: list[bytes] = []

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(Peer(reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def keep_alive(body: bytes = b'{"ok":true}', headers: bytes = b"") -> Handler:
    async def handler(peer: Peer) -> None:
        while True:
            await peer.request()
            await peer.reply(body, headers=headers)

    return handler


async def post(pool: ConnectionPool, url: str, body: bytes = b"{}", timeout: float = 5.0,
               headers: list[tuple[str, str]] | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
    status, raw, content = await pool.request("POST", url, headers or [("content-type", "application/json")],
                                              body, timeout)
    return status, dict((k.lower(), v) for k, v in raw), content


async def test_sequential_requests_share_one_kept_alive_connection():
    async with RawServer(keep_alive()) as server:
        pool = ConnectionPool()
        for _ in range(20):
            status, _, content = await post(pool, server.url + "/v2/rerank")
            assert (status, content) == (200, b'{"ok":true}')
        pool.close()
    assert server.connections == pool.opened == 1


async def test_the_request_line_host_and_length_are_what_the_server_expects():
    seen: list[tuple[bytes, bytes]] = []

    async def handler(peer: Peer) -> None:
        seen.append(await peer.request())
        await peer.reply()

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        await post(pool, server.url + "/v1/rerank?api-version=2024-05-01", b'{"q":"x"}')
        pool.close()
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/rerank?api-version=2024-05-01 HTTP/1.1"
    assert f"host: {server.url.removeprefix('http://')}" in lines
    assert "content-length: 9" in lines and "content-type: application/json" in lines
    assert body == b'{"q":"x"}'


async def test_an_idle_connection_the_server_closed_is_replaced_without_failing_the_request():
    async def answer_once_then_close(peer: Peer) -> None:
        await peer.request()
        await peer.reply(headers=b"connection: keep-alive\r\n")
        await asyncio.sleep(0.05)  # then close, as a server's idle timeout would

    async with RawServer(answer_once_then_close) as server:
        pool = ConnectionPool()
        assert (await post(pool, server.url))[0] == 200
        await asyncio.sleep(0.2)
        assert (await post(pool, server.url))[0] == 200
        pool.close()
    assert server.connections == 2


async def test_a_reused_connection_that_dies_after_the_request_was_written_is_an_error_never_a_resend():
    """The upstream may have received (and billed) the request: sending it again could charge it twice."""
    requests = 0

    async def handler(peer: Peer) -> None:
        nonlocal requests
        await peer.request()
        requests += 1
        await peer.reply()
        await peer.request()  # the second request arrives whole: drop the connection without answering
        requests += 1
        peer.writer.transport.abort()

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        await post(pool, server.url)
        with pytest.raises(StaleConnectionError):
            await post(pool, server.url)
        pool.close()
    assert requests == 2 and server.connections == 1


async def test_connection_close_in_the_response_is_honoured():
    async with RawServer(keep_alive(headers=b"connection: close\r\n")) as server:
        pool = ConnectionPool()
        for _ in range(3):
            assert (await post(pool, server.url))[0] == 200
        pool.close()
    assert pool.opened == 3


async def test_chunked_and_close_delimited_bodies_are_read_whole():
    async def chunked(peer: Peer) -> None:
        await peer.request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                          b"5\r\n{\"a\":\r\n3\r\n12}\r\n0\r\n\r\n")
        await peer.writer.drain()
        await peer.request()  # still usable afterwards

    async def until_close(peer: Peer) -> None:
        await peer.request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"b\":")
        await peer.writer.drain()
        await asyncio.sleep(0.02)
        peer.writer.write(b"1}")

    pool = ConnectionPool()
    async with RawServer(chunked) as server:
        assert (await post(pool, server.url))[2] == b'{"a":12}'
    async with RawServer(until_close) as server:
        assert (await post(pool, server.url))[2] == b'{"b":1}'
    pool.close()


async def test_an_interim_100_continue_is_skipped():
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await peer.reply(b'{"final":1}')

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        assert (await post(pool, server.url))[::2] == (200, b'{"final":1}')
        pool.close()


@pytest.mark.parametrize(("encoding", "encode"), [
    (b"gzip", gzip.compress),
    (b"deflate", zlib.compress),
    (b"deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate, as some servers send
])
async def test_compressed_bodies_are_asked_for_and_decoded(encoding, encode):
    heads: list[bytes] = []
    payload = b'{"results":[' + b",".join(b'{"index":%d}' % i for i in range(200)) + b"]}"

    async def handler(peer: Peer) -> None:
        heads.append((await peer.request())[0])
        await peer.reply(encode(payload), headers=b"content-encoding: " + encoding + b"\r\n")

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        status, headers, content = await post(pool, server.url)
        pool.close()
    assert b"accept-encoding: gzip, deflate" in heads[0]
    assert content == payload and headers[b"content-encoding"] == encoding


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\nnope",
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
])
async def test_unreadable_responses_are_protocol_errors_and_malformed_through_the_transport(reply):
    async def handler(peer: Peer) -> None:
        while True:
            await peer.request()
            peer.writer.write(reply)
            await peer.writer.drain()

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        with pytest.raises(ProtocolError):
            await post(pool, server.url)
        pool.close()
        transport = PoolTransport()
        with pytest.raises(proxy.UpstreamMalformedError):
            await transport.send(UpstreamRequest(url=server.url, json={}, timeout=5))
        await transport.aclose()


async def test_a_response_cut_short_is_an_error_not_a_retry():
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial\":")
        await peer.writer.drain()

    async with RawServer(handler) as server:
        pool = ConnectionPool()
        with pytest.raises(ConnectionError):
            await post(pool, server.url)
        pool.close()
    assert server.connections == 1


async def test_a_timeout_closes_the_connection_it_was_waiting_on():
    closed = asyncio.Event()

    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.reader.read()  # returns when the client closes
        closed.set()

    async with RawServer(silent) as server:
        pool = ConnectionPool()
        with pytest.raises(TimeoutError):
            await post(pool, server.url, timeout=0.1)
        await asyncio.wait_for(closed.wait(), 2)
        pool.close()


async def test_no_more_than_max_connections_requests_are_in_flight():
    in_flight, peak = 0, 0

    async def slow(peer: Peer) -> None:
        nonlocal in_flight, peak
        while True:
            await peer.request()
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            await peer.reply()

    async with RawServer(slow) as server:
        pool = ConnectionPool(max_connections=2)
        results = await asyncio.gather(*(post(pool, server.url) for _ in range(10)))
        pool.close()
    assert [status for status, _, _ in results] == [200] * 10
    assert peak == 2 and server.connections == 2


async def test_idle_connections_expire_after_the_keepalive_timeout():
    async with RawServer(keep_alive()) as server:
        pool = ConnectionPool(keepalive_timeout=0.05)
        await post(pool, server.url)
        await post(pool, server.url)
        await asyncio.sleep(0.1)
        await post(pool, server.url)
        pool.close()
    assert pool.opened == 2


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async with RawServer(keep_alive()) as server:
        pool = ConnectionPool()
        with pytest.raises(ValueError):
            await post(pool, server.url, headers=[("authorization", "Bearer x\r\nx-injected: 1")])
        transport = PoolTransport()
        with pytest.raises(proxy.UpstreamUnavailableError):
            await transport.send(UpstreamRequest(url=server.url, json={}, headers={"x-a": "1\nx-b: 2"}, timeout=5))
        await transport.aclose()
        pool.close()
    assert server.connections == 0


async def test_https_upstreams_are_verified_and_reused():
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with RawServer(keep_alive(), ssl_context=server_context) as server:
        untrusting = PoolTransport()
        with pytest.raises(proxy.UpstreamUnavailableError, match="SSL|certificate"):
            await untrusting.send(UpstreamRequest(url=server.url + "/v2/rerank", json={}, timeout=5))
        await untrusting.aclose()

        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
        pool = ConnectionPool(ssl_context=client_context)
        for _ in range(3):
            assert (await post(pool, server.url + "/v2/rerank"))[::2] == (200, b'{"ok":true}')
        pool.close()
    assert pool.opened == 1


async def test_requests_that_time_out_waiting_for_a_slot_give_their_place_back():
    async def slow(peer: Peer) -> None:
        while True:
            await peer.request()
            await asyncio.sleep(0.01)
            await peer.reply()

    async with RawServer(slow) as server:
        pool = ConnectionPool(max_connections=3)
        results = await asyncio.gather(*(post(pool, server.url, timeout=0.015 if i % 4 == 0 else 5)
                                         for i in range(60)), return_exceptions=True)
        timed_out = [r for r in results if isinstance(r, TimeoutError)]
        assert timed_out and all(isinstance(r, (tuple, TimeoutError)) for r in results)
        again = await asyncio.gather(*(post(pool, server.url, timeout=1) for _ in range(3)))
        pool.close()
    assert [status for status, _, _ in again] == [200, 200, 200]
    assert server.connections <= 3 + len(timed_out)  # a request that timed out mid-answer closed its connection
