"""Minimal pass-through proxies: the floor any Python rerank proxy stands on, one per upstream HTTP client.

FastAPI under uvicorn (uvloop, httptools), no auth, no accounting: read the body, parse the JSON, build the
upstream body (model, query, documents, top_n), forward it to the same path on the upstream, return its
bytes. The only difference between the floors is the HTTP client.

    python bench/floors.py --client aiohttp --port 8201 --upstream http://127.0.0.1:8100
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

Forward = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]
Close = Callable[[], Awaitable[None]]
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-upstream-key"}


def aiohttp_client() -> tuple[Forward, Close]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), cookie_jar=aiohttp.DummyCookieJar())

    async def forward(url: str, body: bytes) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=HEADERS) as response:
            return response.status, await response.read()

    return forward, session.close


def pyreqwest_client() -> tuple[Forward, Close]:
    """reqwest (Rust) with its own Tokio thread: its CPU counts in the process's."""
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(512).default_headers(HEADERS).build()

    async def forward(url: str, body: bytes) -> tuple[int, bytes]:
        response = await client.post(url).body_bytes(body).build().send()
        return response.status, bytes(await response.bytes())

    return forward, client.close


def aiosonic_client() -> tuple[Forward, Close]:
    import aiosonic

    connector = aiosonic.TCPConnector(pool_configs={":default": {"size": 512}})
    client = aiosonic.HTTPClient(connector)

    async def forward(url: str, body: bytes) -> tuple[int, bytes]:
        response = await client.post(url, data=body, headers=HEADERS)
        return response.status_code, await response.content()

    return forward, connector.cleanup


def pool_client() -> tuple[Forward, Close]:
    """rerank-proxy's own upstream client (proxy/http_pool.py), as its server uses it."""
    from proxy.http_pool import ConnectionPool

    pool, pairs = ConnectionPool(max_connections=512), list(HEADERS.items())

    async def forward(url: str, body: bytes) -> tuple[int, bytes]:
        status, _, content = await pool.request("POST", url, pairs, body, 60)
        return status, content

    async def close() -> None:
        pool.close()

    return forward, close


def httpx_client(over_aiohttp: bool = False) -> tuple[Forward, Close]:
    import httpx

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    if over_aiohttp:
        from httpx_aiohttp import AiohttpTransport

        client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=60)
    else:
        client = httpx.AsyncClient(limits=limits, timeout=60)

    async def forward(url: str, body: bytes) -> tuple[int, bytes]:
        response = await client.post(url, content=body, headers=HEADERS)
        return response.status_code, response.content

    return forward, client.aclose


BUILDERS: dict[str, Callable[[], tuple[Forward, Close]]] = {
    "httpx": httpx_client,
    "httpx-aiohttp": lambda: httpx_client(over_aiohttp=True),
    "aiohttp": aiohttp_client,
    "pyreqwest": pyreqwest_client,
    "aiosonic": aiosonic_client,
    "pool": pool_client,
}
CLIENTS = tuple(BUILDERS)


@asynccontextmanager
async def open_client(kind: str) -> AsyncIterator[Forward]:
    if kind not in BUILDERS:
        raise SystemExit(f"unknown client {kind!r}; one of {', '.join(CLIENTS)}")
    forward, close = BUILDERS[kind]()
    try:
        yield forward
    finally:
        await close()


def create_floor(kind: str, upstream: str) -> FastAPI:
    state: dict[str, Forward] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_client(kind) as forward:
            state["forward"] = forward
            yield

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/{path:path}")
    async def forward(path: str, request: Request) -> Response:
        data = orjson.loads(await request.body())
        body = {"model": data["model"], "query": data["query"], "documents": data["documents"]}
        if data.get("top_n") is not None:
            body["top_n"] = data["top_n"]
        status, content = await state["forward"](f"{upstream}/{path}", orjson.dumps(body))
        return Response(content, status_code=status, media_type="application/json")

    @app.get("/")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_floor(args.client, args.upstream.rstrip("/")), host=args.host, port=args.port,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
