"""One HTTP client contract, one suite over every transport (our pool, aiohttp, httpx): framing, encodings,
limits on hostile answers (with the memory they cost, measured in a subprocess), bytes after an answer, no
request sent twice, per-host connection limits, deadlines, TLS with a custom CA, HTTP proxies.

Every upstream here is tests/fakes/hostile.py: raw bytes on 127.0.0.1, scripted by path. A transport that
does not support a case says so in DECLINED, which this suite checks is the whole list of exceptions."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys

import pytest
import trustme

import proxy
from proxy.providers import UpstreamRequest
from proxy.settings import parse_config
from proxy.transport import AiohttpTransport, ClientOptions, HttpxTransport, PoolTransport, server_transport
from tests.fakes.hostile import OK_BODY, PAYLOAD, HostileUpstream

TRANSPORTS = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport, "pool": PoolTransport}
DECLINED = {
    ("pool", "proxy"): "the pool does not speak to proxies: server_transport() picks aiohttp when environment "
                       "proxies are set (test_environment_proxies_switch_the_server_to_aiohttp)",
    ("httpx", "/leftover"): "h11 keeps bytes that come in the same packet as an answer for the next one; httpx "
                            "serves only the SDK, never the server",
    ("httpx", "header limit"): "h11's head limit is fixed (16 KiB); httpx serves only the SDK, which reads no "
                               "config",
}


def options(**general) -> ClientOptions:
    """ClientOptions as the server builds them from general_settings."""
    return parse_config({"general_settings": general}, {}).client_options
MAX_GROWTH_MIB = 64


@pytest.fixture(scope="module")
def upstream():
    with HostileUpstream() as server:
        yield server


@pytest.fixture(params=sorted(TRANSPORTS))
def name(request):
    return request.param


@pytest.fixture
async def transport(name):
    transport = TRANSPORTS[name]()
    yield transport
    await transport.aclose()


def call(url: str, timeout: float = 5.0) -> UpstreamRequest:
    return UpstreamRequest(url=url, json={"query": "q"}, timeout=timeout, documents=100)


@pytest.mark.parametrize("path", ["/ok", "/chunked", "/close-delimited", "/interim", "/gzip", "/deflate",
                                  "/raw-deflate"])
async def test_well_formed_answers_in_every_framing_and_encoding_are_read_whole(upstream, transport, path):
    response = await transport.send(call(upstream.url + path))
    assert response.status == 200
    assert response.body == (OK_BODY if path == "/ok" else PAYLOAD)


async def test_hostile_answers_are_refused_at_once_with_bounded_memory(upstream, name):
    """200 MiB announced or not, an endless chunked stream, a 64 MiB header, a million headers, 1 MiB that
    inflates to 1 GiB (gzip and deflate): 502 each, well before the call's deadline, each costing less than
    MAX_GROWTH_MIB of peak RSS. The same 1 GiB bomb without a size limit ends at its deadline (504): the
    decoding yields to the event loop and checks the deadline."""
    refused = ["/big", "/unannounced", "/endless", "/header", "/many-headers", "/gzip-bomb", "/deflate-bomb"]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.hostile_client", name, upstream.url, *refused, "/gzip-bomb?unlimited",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode == 0, err.decode()[-2000:]
    outcomes = {o["path"]: o for o in map(json.loads, out.decode().splitlines())}
    for path in refused:
        assert (outcomes[path].get("error"), outcomes[path].get("status")) == ("UpstreamMalformedError", 502), \
            outcomes[path]
        assert outcomes[path]["growth_mib"] < MAX_GROWTH_MIB, outcomes[path]
    assert outcomes["/gzip-bomb?unlimited"].get("error") == "UpstreamTimeoutError", outcomes["/gzip-bomb?unlimited"]


@pytest.mark.parametrize("path", ["/leftover", "/leftover-later"])
async def test_bytes_after_the_end_of_an_answer_are_never_read_as_the_next_answer(upstream, name, transport, path):
    if (name, path) in DECLINED:
        pytest.skip(DECLINED[(name, path)])
    upstream.forged.clear()
    first = await transport.send(call(upstream.url + path))
    assert (first.status, first.body) == (200, OK_BODY)
    if path == "/leftover-later":
        await asyncio.to_thread(upstream.forged.wait, 5)
        await asyncio.sleep(0.05)  # let the forged bytes reach the idle connection
    for _ in range(3):
        again = await transport.send(call(upstream.url + "/ok"))
        assert (again.status, again.body) == (200, OK_BODY)


async def test_a_request_the_upstream_may_have_received_is_never_sent_again(upstream, transport):
    """The second call goes out on the kept-alive connection; the upstream reads it and hangs up without an
    answer. Re-sending could charge it twice: the call fails (503) and the upstream saw it once."""
    before = upstream.seen["/drop-second"]
    assert (await transport.send(call(upstream.url + "/drop-second"))).status == 200
    with pytest.raises(proxy.UpstreamUnavailableError):
        await transport.send(call(upstream.url + "/drop-second"))
    assert upstream.seen["/drop-second"] - before == 2


async def test_an_idle_connection_the_upstream_closed_is_replaced_without_failing_the_call(upstream, transport):
    assert (await transport.send(call(upstream.url + "/close-after"))).status == 200
    await asyncio.sleep(0.2)  # the upstream's idle timeout closes the connection meanwhile
    assert (await transport.send(call(upstream.url + "/ok"))).body == OK_BODY


async def test_a_hung_host_only_queues_its_own_calls(upstream, name):
    """Four slots per host, eight in all: ten calls stuck on one host hold four; another host is served."""
    transport = TRANSPORTS[name](options=options(upstream_max_connections=8, upstream_max_connections_per_host=4))
    with HostileUpstream() as healthy:
        before = upstream.seen["/hang"]
        stuck = [asyncio.ensure_future(transport.send(call(upstream.url + "/hang", timeout=60))) for _ in range(10)]
        for _ in range(500):
            if upstream.seen["/hang"] - before >= 4:
                break
            await asyncio.sleep(0.01)
        response = await transport.send(call(healthy.url + "/ok", timeout=10))
        assert (response.status, response.body) == (200, OK_BODY)
        assert upstream.seen["/hang"] - before == 4 and not any(task.done() for task in stuck)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
    await transport.aclose()


async def test_the_body_limit_is_the_configured_base_plus_a_share_per_document(upstream, name):
    """PAYLOAD is about 7 KB: over a 1 KiB base, within 1 KiB + 100 documents x 100 bytes."""
    small = TRANSPORTS[name](options=options(upstream_max_response_mb=1 / 1024,
                                             upstream_response_kb_per_document=0))
    with pytest.raises(proxy.UpstreamMalformedError, match="larger than"):
        await _through(small, upstream.url + "/gzip")
    sized = TRANSPORTS[name](options=options(upstream_max_response_mb=1 / 1024,
                                             upstream_response_kb_per_document=0.1))
    assert (await _through(sized, upstream.url + "/gzip")).body == PAYLOAD


async def test_the_header_limit_is_the_configured_size(upstream, name):
    if (name, "header limit") in DECLINED:
        pytest.skip(DECLINED[(name, "header limit")])
    assert (await _through(TRANSPORTS[name](options=options()), upstream.url + "/wide-headers")).status == 200
    with pytest.raises(proxy.UpstreamMalformedError):
        await _through(TRANSPORTS[name](options=options(upstream_max_header_kb=0.05)), upstream.url + "/wide-headers")


@pytest.mark.parametrize("path", ["/hang", "/trickle"])
async def test_silent_and_trickling_answers_end_at_the_deadline(upstream, transport, path):
    with pytest.raises(proxy.UpstreamTimeoutError):
        await transport.send(call(upstream.url + path, timeout=0.3))


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_upstream(authority):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with HostileUpstream(ssl_context=context) as server:
        yield server


@pytest.fixture(scope="module")
def ca_file(authority, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


async def _through(transport, url: str):
    try:
        return await transport.send(call(url))
    finally:
        await transport.aclose()


async def test_tls_upstreams_are_verified_against_the_configured_ca_bundle(tls_upstream, ca_file, name):
    cls = TRANSPORTS[name]
    with pytest.raises(proxy.UpstreamUnavailableError, match="SSL|certificate|CERTIFICATE"):
        await _through(cls(), tls_upstream.url + "/ok")
    for config, environ in [({"litellm_settings": {"ssl_verify": ca_file}}, {}),  # the config's CA bundle
                            ({}, {"SSL_CERT_FILE": ca_file}),  # the environment's, as OpenSSL reads it
                            ({"litellm_settings": {"ssl_verify": False}}, {})]:  # verification off
        options = parse_config(config, environ).client_options
        response = await _through(cls(options=options), tls_upstream.url + "/gzip")
        assert (response.status, response.body) == (200, PAYLOAD), config


async def test_calls_go_through_an_http_proxy_from_the_environment(upstream, name, monkeypatch):
    if (name, "proxy") in DECLINED:
        pytest.skip(DECLINED[(name, "proxy")])
    with HostileUpstream() as forward_proxy:  # answers the proxied request itself
        monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        cls = TRANSPORTS[name]
        transport = cls(trust_env=True) if cls is AiohttpTransport else cls()
        response = await _through(transport, "http://upstream.invalid/v1/rerank")
    assert response.body == OK_BODY
    assert forward_proxy.seen["http://upstream.invalid/v1/rerank"] == 1  # the absolute form a proxy receives


async def test_environment_proxies_switch_the_server_to_aiohttp(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    transport = server_transport()
    assert isinstance(transport, AiohttpTransport)
    await transport.aclose()
    monkeypatch.delenv("HTTPS_PROXY")
    for variable in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    transport = server_transport()
    assert isinstance(transport, PoolTransport)
    await transport.aclose()


def test_only_the_declined_cases_are_skipped():
    assert set(DECLINED) == {("pool", "proxy"), ("httpx", "/leftover"), ("httpx", "header limit")}
