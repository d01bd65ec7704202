"""Both transports behave the same: exact upstream request (signed ones included), error table, timeouts,
unreachable upstreams. The server uses `AiohttpTransport`; the SDK uses `HttpxTransport`."""

from __future__ import annotations

import os

import pytest

import proxy
from proxy.deployments import resolve_deployment
from proxy.invoke import invoke
from proxy.providers import REGISTRY, UpstreamRequest
from proxy.request import make_request
from proxy.transport import AiohttpTransport, HttpxTransport, PoolTransport, encode_json
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.fakes.catalog import CASES
from tests.fakes.server import LiveServer, dropping_server, free_port

HTTP_PROVIDERS = sorted({p.name for p in REGISTRY.values() if not p.in_process})
TRANSPORTS = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport, "pool": PoolTransport}


@pytest.fixture(scope="module", params=HTTP_PROVIDERS)
def case(request):
    case = CASES[request.param]
    fake = case.fake().start()
    yield case, fake
    fake.stop()


@pytest.fixture(params=sorted(TRANSPORTS))
async def transport(request):
    transport = TRANSPORTS[request.param]()
    yield transport
    await transport.aclose()


async def call(case, fake, transport, top_n=None, **params):
    case_params = {**case.params(fake), **params}
    deployment = resolve_deployment(case.model, case_params, environ={**os.environ, **case.env})
    request = make_request(CAPITAL_QUERY, CAPITALS, top_n=top_n, return_documents=True, api_version=2)
    return (await invoke(request, deployment, transport)).to_response()


@pytest.mark.parametrize("top_n", [None, 2])
async def test_every_provider_gets_the_exact_request_through_either_transport(case, transport, top_n):
    case_, fake = case
    fake.reset()
    response = await call(case_, fake, transport, top_n=top_n)
    assert len(response.results) == (top_n or len(CAPITALS))
    path, body = case_.expected(fake, CAPITAL_QUERY, CAPITALS, top_n)
    assert fake.last.path == path
    assert fake.last.body == body
    case_.check_headers(fake.last, fake)


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("401", proxy.UpstreamAuthError, 502),
        ("429", proxy.UpstreamRateLimitError, 429),
        ("500", proxy.UpstreamUnavailableError, 503),
        ("malformed", proxy.UpstreamMalformedError, 502),
    ],
)
async def test_upstream_failures_map_to_the_same_typed_errors(case, transport, fault, error, status):
    case_, fake = case
    fake.reset()
    fake.fail_next(fault)
    with pytest.raises(error) as caught:
        await call(case_, fake, transport)
    assert caught.value.status == status


async def test_a_slow_upstream_is_a_timeout_after_the_deployment_timeout(case, transport):
    case_, fake = case
    fake.reset()
    fake.fail_next("timeout")
    with pytest.raises(proxy.UpstreamTimeoutError) as caught:
        await call(case_, fake, transport, timeout=0.1)
    assert "0.1s" in caught.value.message


def _request(url: str) -> UpstreamRequest:
    return UpstreamRequest(url=url, json={"query": "q"}, timeout=5)


async def test_a_refused_connection_is_unavailable(transport):
    with pytest.raises(proxy.UpstreamUnavailableError):
        await transport.send(_request(f"http://127.0.0.1:{free_port()}/rerank"))


async def test_a_connection_dropped_without_an_answer_is_unavailable(transport):
    with dropping_server() as url, pytest.raises(proxy.UpstreamUnavailableError):
        await transport.send(_request(url + "/rerank"))


async def _redirecting_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 307,
                "headers": [(b"Location", b"/elsewhere"), (b"X-Twice", b"a"), (b"X-Twice", b"b")]})
    await send({"type": "http.response.body", "body": b""})


async def test_redirects_are_returned_not_followed_with_headers_lowercased_and_joined(transport):
    with LiveServer(_redirecting_app) as server:
        response = await transport.send(_request(server.url + "/rerank"))
    assert response.status == 307
    assert response.headers["location"] == "/elsewhere"
    assert response.headers["x-twice"] == "a, b"


def test_json_bodies_are_compact_utf8_and_fall_back_to_the_stdlib_for_other_types():
    assert encode_json({"q": "café", "n": [1, 2]}) == '{"q":"café","n":[1,2]}'.encode()
    assert encode_json({1: "int key"}) == b'{"1":"int key"}'


async def _echo_authorization(scope, receive, send):
    if scope["type"] != "http":
        return
    authorization = dict(scope["headers"]).get(b"authorization", b"")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-seen", authorization)]})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_credentials_in_the_url_become_basic_auth_and_leave_the_url(transport):
    with LiveServer(_echo_authorization) as server:
        url = server.url.replace("http://", "http://user:hunter2@") + "/rerank"
        response = await transport.send(UpstreamRequest(url=url, json={}, headers={"authorization": "Bearer x"},
                                                         timeout=5))
    assert response.status == 200
    assert response.headers["x-seen"] == "Basic dXNlcjpodW50ZXIy"
