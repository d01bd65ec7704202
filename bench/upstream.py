"""A fake Cohere rerank upstream that is never the bottleneck: raw asyncio protocol, httptools, uvloop.

`POST /d<N>/v1/rerank` or `/d<N>/v2/rerank` answers a pre-rendered Cohere response ranking N documents
(the runner points each deployment's `api_base` at `http://host:port/d<N>`). The body is not parsed:
the request is read whole (as any server must), the answer is a cached byte string. `GET /` is 200.

    python bench/upstream.py --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re

import httptools

_DOCS = re.compile(rb"^/d(\d+)/")
_cache: dict[int, bytes] = {}


def rerank_body(n: int) -> bytes:
    """Cohere v2's rerank response for n documents: every index once, scores strictly descending."""
    results = [{"index": n - 1 - i, "relevance_score": round(1.0 - (i + 1) / (n + 2), 6)} for i in range(n)]
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": max(1, math.ceil(n / 100))}}
    return json.dumps({"id": f"bench-{n}", "results": results, "meta": meta}, separators=(",", ":")).encode()


def http_response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            + ("" if keep_alive else "connection: close\r\n") + "\r\n")
    return head.encode() + body


def answer_for(path: bytes) -> bytes:
    match = _DOCS.match(path)
    if match is None:
        return _NOT_FOUND if path not in (b"/", b"/health") else _OK
    n = int(match.group(1))
    cached = _cache.get(n)
    if cached is None:
        cached = _cache[n] = http_response(200, rerank_body(n))
    return cached


_NOT_FOUND = http_response(404, b'{"message":"no such path; POST /d<N>/v2/rerank"}')
_OK = http_response(200, b'{"status":"ok"}')


class UpstreamProtocol(asyncio.Protocol):
    __slots__ = ("parser", "transport", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(http_response(400, b'{"message":"bad request"}', keep_alive=False))
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        assert self.transport is not None
        path, self.url = self.url, b""
        self.transport.write(answer_for(path.partition(b"?")[0]))
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int, ready: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096, reuse_address=True)
    for n in (4, 100, 1000):
        answer_for(f"/d{n}/".encode())
    if ready:
        print(ready, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, ready="upstream ready"))
    else:
        uvloop.run(serve(args.host, args.port, ready="upstream ready"))


if __name__ == "__main__":
    main()
