"""Upstream error text never carries our provider secret, never forges a log line, never runs long (issue 17,
item 10): `safe_text` alone, and through a real server against an upstream that echoes what it was sent."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy.redaction import MAX_TEXT, safe_text
from tests.fakes.server import LiveServer
from tests.serving import MASTER_KEY, config_for, running_proxy

SECRET = "co-live-4f9a8b7c6d5e4f3a2b1c"


def test_safe_text_cuts_secrets_escapes_control_characters_and_caps_length() -> None:
    assert safe_text(f"invalid key {SECRET}!", [SECRET]) == "invalid key [redacted]!"
    assert safe_text("header was: Bearer abc.def-ghi", []) == "header was: Bearer [redacted]"
    assert safe_text("Basic plan: token limit exceeded", []) == "Basic plan: token limit exceeded"
    assert safe_text("boom\n2026-01-01 INFO forged line\r\x1b[31m", []) == (
        "boom\\n2026-01-01 INFO forged line\\r\\u001b[31m")
    long = safe_text("x" * (MAX_TEXT - 5) + SECRET + "y" * 10_000, [SECRET])
    assert SECRET[:6] not in long and len(long) == MAX_TEXT + 3 and long.endswith("...")


def _echo(request: Request) -> Response:
    auth = request.headers.get("authorization", "")
    if request.url.path.startswith("/v500/"):
        return Response("upstream crashed\n2026-12-06 12:00:00,000 WARNING proxy: forged " + "z" * 100_000,
                        status_code=500)
    return JSONResponse({"message": f"invalid api token: you sent '{auth}' (key {auth.split()[-1]})"},
                        status_code=401)


@pytest.fixture(scope="module")
def echoing_upstream():
    app = Starlette(routes=[Route("/v2/rerank", _echo, methods=["POST"]),
                            Route("/v500/v2/rerank", _echo, methods=["POST"])])
    with LiveServer(app) as server:
        yield server.url


def test_a_provider_echoing_our_key_reaches_neither_the_caller_nor_the_log(
    echoing_upstream: str, tmp_path, caplog: pytest.LogCaptureFixture,
) -> None:
    models = [
        {"model_name": "echo-401", "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": "os.environ/SECRET",
                                                      "api_base": echoing_upstream}},
        {"model_name": "echo-500", "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": "os.environ/SECRET",
                                                      "api_base": echoing_upstream + "/v500"}},
    ]
    config = config_for(None, f"sqlite:///{tmp_path / 'spend.db'}", model_list=models,
                        router_settings={"num_retries": 0})
    with caplog.at_level(logging.INFO), running_proxy(config, {"SECRET": SECRET}) as server:
        for model in ("echo-401", "echo-500"):
            answer = httpx.post(f"{server.url}/v2/rerank", headers={"authorization": f"Bearer {MASTER_KEY}"},
                                json={"model": model, "query": "q", "documents": ["a"]}, timeout=30)
            assert answer.status_code in (502, 503), answer.text
            message = answer.json()["message"]
            assert SECRET not in message and "\n" not in message and len(message) < 2_000, message
    logged = caplog.text
    assert "invalid api token" in logged and "upstream crashed" in logged  # the failures were logged ...
    assert SECRET not in logged and "forged" in logged  # ... without our key, the forged line kept inside one
    assert not any(line.startswith("2026-12-06 12:00:00,000 WARNING") for line in logged.splitlines())
    assert all(len(record.getMessage()) < 4_000 for record in caplog.records)
